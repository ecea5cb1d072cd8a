//! `docker load`-able archives written without Docker (the format `docker save` writes):
//! `manifest.json`, the image config `<id>.json` and one layer `<diff_id>.tar`, all
//! deterministic, so the archive's bytes (and the image ID, the config's SHA-256) are a
//! function of the tree and the config alone.

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::fetch::hex;
use crate::rootfs::{Kind, Tree};
use crate::tar;

/// What `docker run` does with the image (the Dockerfile instructions it replaces).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Config {
    /// `ENTRYPOINT` (exec form).
    pub entrypoint: Vec<String>,
    /// `CMD` (exec form).
    pub cmd: Vec<String>,
    /// `USER uid:gid`.
    pub user: String,
    /// `WORKDIR`.
    pub workdir: String,
    /// `ENV` pairs, `KEY=value`.
    pub env: Vec<String>,
    /// `EXPOSE` ports, `3000/tcp`.
    pub expose: Vec<String>,
    /// `VOLUME` paths.
    pub volumes: Vec<String>,
}

/// A built archive: its bytes and the image ID (`sha256:<hex>` of the config).
#[derive(Debug, Clone)]
pub struct Archive {
    /// The whole `docker load` input.
    pub bytes: Vec<u8>,
    /// The image ID docker will show.
    pub image_id: String,
    /// The repository:tag recorded in the manifest.
    pub tag: String,
}

/// The epoch every timestamp is pinned to.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Builds the archive of `tree` with `config`, tagged `<repo>:c-<first 16 hex of the ID>`.
pub fn archive(repo: &str, tree: &Tree, config: &Config) -> Archive {
    let layer = tar::write(tree);
    let diff_id = hex(&Sha256::digest(&layer));
    let map = |items: &[String]| -> serde_json::Map<String, serde_json::Value> {
        items.iter().map(|p| (p.clone(), json!({}))).collect()
    };
    let image = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": {
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "User": config.user,
            "WorkingDir": config.workdir,
            "Env": config.env,
            "ExposedPorts": map(&config.expose),
            "Volumes": map(&config.volumes),
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created": EPOCH, "created_by": format!("images: role {repo}") }],
    });
    let config_bytes = image.to_string().into_bytes();
    let id = hex(&Sha256::digest(&config_bytes));
    let tag = format!("{repo}:c-{}", &id[..16]);
    let manifest = json!([{
        "Config": format!("{id}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{diff_id}.tar")],
    }]);
    let mut outer = Tree::new();
    outer.file(&format!("{id}.json"), config_bytes, 0o644);
    outer.file(&format!("{diff_id}.tar"), layer, 0o644);
    outer.file("manifest.json", manifest.to_string().into_bytes(), 0o644);
    debug_assert!(outer
        .entries
        .values()
        .all(|e| matches!(e.kind, Kind::File(_))));
    Archive {
        bytes: tar::write(&outer),
        image_id: format!("sha256:{id}"),
        tag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let mut t = Tree::new();
        t.file("usr/local/bin/app", b"\x7fELF".to_vec(), 0o755);
        t
    }

    #[test]
    fn the_tag_is_the_config_digest_and_the_manifest_names_the_layer() {
        let config = Config {
            entrypoint: vec!["/usr/local/bin/app".into()],
            ..Config::default()
        };
        let a = archive("app", &tree(), &config);
        assert!(a.tag.starts_with("app:c-"));
        assert_eq!(a.image_id[7..23], a.tag[6..]);
        let text = String::from_utf8_lossy(&a.bytes);
        assert!(text.contains("\"RepoTags\":[\"app:c-"), "manifest present");
        assert_eq!(
            archive("app", &tree(), &config).bytes,
            a.bytes,
            "byte-identical rebuild"
        );
        let other = Config {
            cmd: vec!["--help".into()],
            ..config
        };
        assert_ne!(
            archive("app", &tree(), &other).image_id,
            a.image_id,
            "config is content"
        );
    }
}
