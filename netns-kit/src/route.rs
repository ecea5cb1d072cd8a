//! Routes: default, static, via a gateway and/or out of a device, with a metric.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::addr::family_of;
use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::topology::plan::RoutePlan;

/// A unicast route in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network and prefix length; None = default route.
    pub dest: Option<(IpAddr, u8)>,
    /// Next hop.
    pub via: Option<IpAddr>,
    /// Output interface index.
    pub dev: Option<u32>,
    /// Metric (priority); None = kernel default (0).
    pub metric: Option<u32>,
}

impl Route {
    /// The default route via `gw`.
    pub fn default_via(gw: IpAddr) -> Route {
        Route {
            dest: None,
            via: Some(gw),
            dev: None,
            metric: None,
        }
    }

    /// A route to `net/prefix`, to be completed with `.via()` and/or `.dev()`.
    pub fn to(net: IpAddr, prefix: u8) -> Route {
        Route {
            dest: Some((net, prefix)),
            via: None,
            dev: None,
            metric: None,
        }
    }

    /// The route a plan declares ([`RoutePlan`]): a `0.0.0.0/0` (or `::/0`) destination is
    /// the default route, any other is its network (host bits cleared); the gateway and the
    /// metric are taken as planned. The plan names the output device; `dev_index` turns that
    /// name into the interface index in the route's namespace (it is called only when the plan
    /// names one, and its error is returned as is). The one conversion every applier uses:
    /// the netns-kit apply transaction and the Docker backend's wiring.
    pub fn from_planned<E>(
        r: &RoutePlan,
        dev_index: impl FnOnce(&str) -> std::result::Result<u32, E>,
    ) -> std::result::Result<Route, E> {
        let dest = r.dest_prefix();
        let dev = r.dev.as_deref().map(dev_index).transpose()?;
        Ok(Route {
            dest,
            via: r.via,
            dev,
            metric: r.metric,
        })
    }

    /// Through gateway `gw`.
    pub fn via(mut self, gw: IpAddr) -> Route {
        self.via = Some(gw);
        self
    }

    /// Out of interface `index`.
    pub fn dev(mut self, index: u32) -> Route {
        self.dev = Some(index);
        self
    }

    /// With this metric.
    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    fn family_ip(&self) -> Result<IpAddr> {
        let ip = self
            .dest
            .map(|d| d.0)
            .or(self.via)
            .ok_or_else(|| Error::Invalid {
                kind: "route",
                value: format!("{self:?}"),
                expected: "a destination or a gateway",
            })?;
        if let (Some((d, p)), Some(v)) = (self.dest, self.via) {
            if d.is_ipv4() != v.is_ipv4() {
                return Err(Error::Invalid {
                    kind: "route",
                    value: format!("{d}/{p} via {v}"),
                    expected: "a gateway of the destination's address family",
                });
            }
        }
        if self.via.is_none() && self.dev.is_none() {
            return Err(Error::Invalid {
                kind: "route",
                value: format!("{self:?}"),
                expected: "a gateway (via) or an output device (dev)",
            });
        }
        Ok(ip)
    }

    fn message(&self) -> Result<RouteMessage> {
        let ip = self.family_ip()?;
        let header = RouteHeader {
            address_family: family_of(ip),
            destination_prefix_length: self.dest.map_or(0, |d| d.1),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Static,
            scope: if self.via.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            },
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        let mut msg = RouteMessage::default();
        if let Some((d, _)) = self.dest {
            msg.attributes.push(RouteAttribute::Destination(addr(d)));
        }
        msg.header = header;
        if let Some(v) = self.via {
            msg.attributes.push(RouteAttribute::Gateway(addr(v)));
        }
        if let Some(d) = self.dev {
            msg.attributes.push(RouteAttribute::Oif(d));
        }
        if let Some(m) = self.metric {
            msg.attributes.push(RouteAttribute::Priority(m));
        }
        Ok(msg)
    }

    fn describe(&self) -> String {
        let dest = match self.dest {
            Some((d, p)) => format!("{d}/{p}"),
            None => "default".to_string(),
        };
        let via = self.via.map(|v| format!(" via {v}")).unwrap_or_default();
        let dev = self.dev.map(|d| format!(" dev #{d}")).unwrap_or_default();
        format!("route {dest}{via}{dev}")
    }

    /// Queue adding the route.
    pub fn queue_add(&self, nl: &mut Netlink) -> Result<()> {
        let msg = self.message()?;
        nl.queue(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("add {}", self.describe()),
        );
        Ok(())
    }

    /// Add the route now.
    pub fn add(&self, nl: &mut Netlink) -> Result<()> {
        self.queue_add(nl)?;
        nl.flush()
    }

    /// Delete the route now.
    pub fn delete(&self, nl: &mut Netlink) -> Result<()> {
        let msg = self.message()?;
        nl.execute(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            format!("delete {}", self.describe()),
        )
    }
}

fn addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// Every route of the main table in the socket's namespace (IPv4 and IPv6).
pub fn list(nl: &mut Netlink) -> Result<Vec<Route>> {
    let answers = nl.dump(
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        "routes",
    )?;
    let mut out = Vec::new();
    for m in answers {
        let RouteNetlinkMessage::NewRoute(r) = m else {
            continue;
        };
        if r.header.table != RouteHeader::RT_TABLE_MAIN {
            continue;
        }
        let mut route = Route {
            dest: None,
            via: None,
            dev: None,
            metric: None,
        };
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(d) => {
                    route.dest = ip_of(d).map(|ip| (ip, r.header.destination_prefix_length))
                }
                RouteAttribute::Gateway(g) => route.via = ip_of(g),
                RouteAttribute::Oif(o) => route.dev = Some(*o),
                RouteAttribute::Priority(p) => route.metric = Some(*p),
                _ => {}
            }
        }
        out.push(route);
    }
    Ok(out)
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(dest: &str, via: Option<&str>, dev: Option<&str>, metric: Option<u32>) -> RoutePlan {
        RoutePlan {
            ns: "n".into(),
            dest: dest.parse().unwrap_or_else(|e| panic!("{dest}: {e}")),
            via: via.map(|v| v.parse().unwrap_or_else(|e| panic!("{v}: {e}"))),
            dev: dev.map(str::to_string),
            metric,
        }
    }

    fn no_dev(name: &str) -> std::result::Result<u32, String> {
        Err(format!("asked for {name}"))
    }

    #[test]
    fn a_planned_default_route_has_no_destination() {
        let r = Route::from_planned(&planned("0.0.0.0/0", Some("10.0.0.1"), None, None), no_dev);
        assert_eq!(
            r,
            Ok(Route::default_via(
                "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))
            ))
        );
        let r = Route::from_planned(&planned("::/0", Some("fd00::1"), None, None), no_dev);
        assert_eq!(r.map(|r| r.dest), Ok(None));
    }

    #[test]
    fn a_planned_destination_is_its_network_with_gateway_device_and_metric() {
        let r = Route::from_planned(
            &planned("10.1.2.3/24", Some("10.0.0.1"), Some("eth1"), Some(50)),
            |name| if name == "eth1" { Ok(7) } else { no_dev(name) },
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            r,
            Ok(Route {
                dest: Some((ip("10.1.2.0"), 24)),
                via: Some(ip("10.0.0.1")),
                dev: Some(7),
                metric: Some(50),
            })
        );
    }

    #[test]
    fn a_device_that_cannot_be_resolved_is_the_callers_error() {
        let r = Route::from_planned(&planned("10.1.0.0/16", None, Some("veth9"), None), no_dev);
        assert_eq!(r, Err("asked for veth9".to_string()));
    }
}
