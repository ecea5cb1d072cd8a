//! `lab scenarios --backend netns|docker|vm [FILE]`: runs the scenarios on each backend (one
//! deployment per backend, every scenario in turn) and prints the matrix — scenario ×
//! backend, passed / FAILED / n/a with each one's time — ending with
//! `N passed, N failed, N not applicable`. Progress goes to stderr while it runs.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::start_backend;
use crate::deployment::{Backend, Deployment};
use crate::scenarios::{self, Outcome, Scenario};

/// How one scenario ended on one backend, with its time.
pub type Cell = (Outcome, Duration);

/// The result of a run: for each backend (column), one cell per scenario (row).
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The scenarios' names, in run order.
    pub rows: Vec<&'static str>,
    /// The backends, in the order asked.
    pub columns: Vec<Backend>,
    /// `cells[column][row]`.
    pub cells: Vec<Vec<Cell>>,
}

impl Matrix {
    /// (passed, failed, not applicable) over every cell.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for (outcome, _) in self.cells.iter().flatten() {
            match outcome {
                Outcome::Passed => c.0 += 1,
                Outcome::Failed(_) => c.1 += 1,
                Outcome::NotApplicable(_) => c.2 += 1,
            }
        }
        c
    }

    /// True when every applicable scenario passed on every backend.
    pub fn all_passed(&self) -> bool {
        self.counts().1 == 0
    }

    /// The table, then each failure's reason, then the `N passed, N failed, N not applicable`
    /// line.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.len())
            .chain(["scenario".len()])
            .max()
            .unwrap_or(0);
        let cell = |(o, t): &Cell| match o {
            Outcome::Passed => format!("passed {:>6.1}s", t.as_secs_f64()),
            Outcome::Failed(_) => format!("FAILED {:>6.1}s", t.as_secs_f64()),
            Outcome::NotApplicable(_) => "n/a".to_string(),
        };
        let mut out = format!("{:width$}", "scenario");
        for b in &self.columns {
            out.push_str(&format!("  {:<15}", b.name()));
        }
        out = out.trim_end().to_string();
        out.push('\n');
        for (i, row) in self.rows.iter().enumerate() {
            let mut line = format!("{row:width$}");
            for col in &self.cells {
                if let Some(c) = col.get(i) {
                    line.push_str(&format!("  {:<15}", cell(c)));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for (b, col) in self.columns.iter().zip(&self.cells) {
            // One block per reason: a backend that cannot start fails every row alike.
            let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
            for (row, (o, _)) in self.rows.iter().zip(col) {
                if let Outcome::Failed(why) = o {
                    match reasons.iter_mut().find(|(w, _)| *w == why.as_str()) {
                        Some((_, rows)) => rows.push(row),
                        None => reasons.push((why, vec![row])),
                    }
                }
            }
            for (why, rows) in reasons {
                out.push_str(&format!(
                    "\nFAILED {} on {b}:\n{}\n",
                    rows.join(", "),
                    indent(why)
                ));
            }
        }
        let (p, f, n) = self.counts();
        out.push_str(&format!("\n{p} passed, {f} failed, {n} not applicable\n"));
        out
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names of the scenarios, one a line, with what they need beyond the common operations.
pub fn list(selected: &[Scenario]) -> String {
    selected
        .iter()
        .map(|s| {
            let mut needs = Vec::new();
            if s.needs.host_faults {
                needs.push("host faults");
            }
            if s.needs.partitions {
                needs.push("partitions");
            }
            if needs.is_empty() {
                format!("{}\n", s.name)
            } else {
                format!("{}  (needs {})\n", s.name, needs.join(", "))
            }
        })
        .collect()
}

/// Runs `selected` on every backend of `backends` against the declaration `file` and returns
/// the matrix. A backend that cannot start fails every scenario it would have run.
pub fn run(backends: &[Backend], file: &Path, selected: &[Scenario]) -> Matrix {
    let mut cells = Vec::new();
    for &backend in backends {
        progress(&format!("{backend}: starting {}", file.display()));
        let started = Instant::now();
        let column = match start_backend(backend, file) {
            Ok(d) => {
                progress(&format!(
                    "{backend}: ready in {:.1}s",
                    started.elapsed().as_secs_f64()
                ));
                let column = run_on(d.as_ref(), selected);
                progress(&format!("{backend}: tearing down"));
                drop(d);
                column
            }
            Err(e) => {
                progress(&format!("{backend}: cannot start: {e}"));
                selected
                    .iter()
                    .map(|_| {
                        (
                            Outcome::Failed(format!("start the deployment: {e}")),
                            Duration::ZERO,
                        )
                    })
                    .collect()
            }
        };
        cells.push(column);
    }
    Matrix {
        rows: selected.iter().map(|s| s.name).collect(),
        columns: backends.to_vec(),
        cells,
    }
}

/// Every scenario of `selected` on `d` in turn, each reported on stderr as it ends (with
/// the last log lines of every instance when it failed).
pub fn run_on(d: &dyn Deployment, selected: &[Scenario]) -> Vec<Cell> {
    let b = d.backend();
    selected
        .iter()
        .map(|s| {
            progress(&format!("{b}: {} ...", s.name));
            let (outcome, took) = scenarios::run_one(s, d);
            match &outcome {
                Outcome::Passed => progress(&format!(
                    "{b}: {} passed ({:.1}s)",
                    s.name,
                    took.as_secs_f64()
                )),
                Outcome::NotApplicable(why) => progress(&format!("{b}: {} n/a: {why}", s.name)),
                Outcome::Failed(why) => {
                    progress(&format!(
                        "{b}: {} FAILED ({:.1}s): {why}",
                        s.name,
                        took.as_secs_f64()
                    ));
                    for svc in &d.topology().services {
                        for i in &svc.instances {
                            if let Some(tail) = d.log_tail(&i.node, 12) {
                                progress(&format!("--- last lines of {} ---\n{tail}", i.node));
                            }
                        }
                    }
                }
            }
            (outcome, took)
        })
        .collect()
}

fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "lab scenarios: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_shows_every_cell_and_ends_with_the_counts() {
        let m = Matrix {
            rows: vec!["a::one", "b::two", "c::three"],
            columns: vec![Backend::Netns, Backend::Vm],
            cells: vec![
                vec![
                    (Outcome::Passed, Duration::from_millis(1500)),
                    (Outcome::Failed("boom".into()), Duration::from_secs(2)),
                    (Outcome::NotApplicable("no hosts".into()), Duration::ZERO),
                ],
                vec![
                    (Outcome::Passed, Duration::from_secs(3)),
                    (Outcome::Passed, Duration::from_secs(4)),
                    (Outcome::Passed, Duration::from_secs(5)),
                ],
            ],
        };
        let text = m.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("scenario")
                && lines[0].contains("netns")
                && lines[0].contains("vm")
        );
        assert!(lines[1].starts_with("a::one") && lines[1].contains("passed    1.5s"));
        assert!(lines[2].contains("FAILED    2.0s") && lines[2].contains("passed    4.0s"));
        assert!(lines[3].contains("n/a"));
        assert!(text.contains("FAILED b::two on netns:\n    boom"));
        assert_eq!(lines.last(), Some(&"4 passed, 1 failed, 1 not applicable"));
        assert!(!m.all_passed());
    }

    #[test]
    fn the_list_names_what_a_scenario_needs() {
        let text = list(&scenarios::all());
        assert!(text.lines().any(|l| l.starts_with("policy::")));
        assert!(text.contains("(needs host faults)"));
        assert!(text.contains("(needs partitions)"));
    }
}
