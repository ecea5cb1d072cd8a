//! Links: one builder per kind (bridge, veth, vxlan, dummy) sharing the common settings
//! below (name, index, MTU, MAC, up, master, alias, target namespace), plus the operations
//! every link supports (up/down, MTU, MAC, master, alias, delete, look-up, listing).

pub mod bridge;
pub mod dummy;
pub mod veth;
pub mod vxlan;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage, State,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::netlink::Netlink;

pub use bridge::bridge;
pub use dummy::dummy;
pub use veth::veth;
pub use vxlan::{vxlan, VxlanRemote};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// Settings every link kind accepts at creation.
#[derive(Debug, Clone, Default)]
pub struct LinkSettings {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Ask for this interface index (0 = let the kernel choose). Lets a batch refer to a
    /// link (as master, route device...) before the kernel has answered.
    pub index: u32,
    /// MTU in bytes (None = kernel default).
    pub mtu: Option<u32>,
    /// Ethernet address (None = random).
    pub mac: Option<[u8; 6]>,
    /// Bring the link up at creation.
    pub up: bool,
    /// Index of the master (bridge) in the link's namespace.
    pub master: Option<u32>,
    /// Create the link directly in this namespace (raw fd, kept open by the caller).
    pub netns_fd: Option<i32>,
}

impl LinkSettings {
    fn check(&self) -> Result<()> {
        check_ifname(&self.name)
    }

    /// The header and attributes shared by every kind.
    fn message(&self) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = self.index;
        if self.up {
            msg.header.flags |= LinkFlags::Up;
            msg.header.change_mask |= LinkFlags::Up;
        }
        msg.attributes
            .push(LinkAttribute::IfName(self.name.clone()));
        if let Some(mtu) = self.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = self.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(m) = self.master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        if let Some(fd) = self.netns_fd {
            msg.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        msg
    }
}

/// True when the kernel accepts `name` as an interface name (its `dev_valid_name`): 1..=15
/// bytes ([`MAX_IFNAME`]), not "." or "..", without '/', ':', whitespace or NUL.
///
/// The one interface-name rule of the crate: the topology model's stricter check
/// (`topology::names::is_valid_ifname`, portable characters only) is this rule plus a
/// character set.
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// Reject interface names the kernel would refuse ([`is_valid_ifname`]) with a typed error.
pub fn check_ifname(name: &str) -> Result<()> {
    if is_valid_ifname(name) {
        Ok(())
    } else {
        Err(Error::Invalid {
            kind: "interface name",
            value: name.to_string(),
            expected: "1-15 bytes without '/', ':' or whitespace",
        })
    }
}

/// A link to create: common settings plus the kind-specific part. Built by [`bridge()`],
/// [`veth()`], [`vxlan()`], [`dummy()`].
#[derive(Debug, Clone)]
pub struct NewLink {
    settings: LinkSettings,
    kind: InfoKind,
    data: Option<InfoData>,
    peer: Option<LinkSettings>,
}

impl NewLink {
    fn new(name: &str, kind: InfoKind) -> NewLink {
        NewLink {
            settings: LinkSettings {
                name: name.to_string(),
                ..LinkSettings::default()
            },
            kind,
            data: None,
            peer: None,
        }
    }

    /// Ask for a specific interface index (unique in the target namespace).
    pub fn index(mut self, index: u32) -> Self {
        self.settings.index = index;
        self
    }

    /// Set the MTU (bytes).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.settings.mtu = Some(mtu);
        self
    }

    /// Set the Ethernet address.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.settings.mac = Some(mac);
        self
    }

    /// Bring the link up as it is created.
    pub fn up(mut self) -> Self {
        self.settings.up = true;
        self
    }

    /// Enslave to the bridge with this index (in the link's namespace).
    pub fn master(mut self, index: u32) -> Self {
        self.settings.master = Some(index);
        self
    }

    /// Create the link directly in namespace `ns` (the fd must stay open until sent).
    pub fn netns(mut self, ns: BorrowedFd<'_>) -> Self {
        self.settings.netns_fd = Some(ns.as_raw_fd());
        self
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The netlink message creating this link.
    pub fn build(&self) -> Result<LinkMessage> {
        self.settings.check()?;
        let mut msg = self.settings.message();
        let mut info = vec![LinkInfo::Kind(self.kind.clone())];
        match (&self.peer, &self.data) {
            (Some(peer), _) => {
                peer.check()?;
                info.push(LinkInfo::Data(InfoData::Veth(
                    netlink_packet_route::link::InfoVeth::Peer(peer.message()),
                )));
            }
            (None, Some(data)) => info.push(LinkInfo::Data(data.clone())),
            (None, None) => {}
        }
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        Ok(msg)
    }

    /// A description for error messages.
    pub fn describe(&self) -> String {
        match &self.peer {
            Some(p) => format!(
                "create {:?} {} (peer {})",
                self.kind, self.settings.name, p.name
            ),
            None => format!("create {:?} {}", self.kind, self.settings.name),
        }
    }

    /// Queue the creation on `nl` (sent with the next flush).
    pub fn queue(&self, nl: &mut Netlink) -> Result<()> {
        let msg = self.build()?;
        nl.queue(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            self.describe(),
        );
        Ok(())
    }

    /// Create the link now.
    pub fn create(&self, nl: &mut Netlink) -> Result<()> {
        self.queue(nl)?;
        nl.flush()
    }
}

/// A change to an existing link (by index), queued as one RTM_NEWLINK (no create).
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    index: u32,
    up: Option<bool>,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    master: Option<u32>,
    alias: Option<String>,
    ipv6_link_local: Option<bool>,
    netns_fd: Option<i32>,
}

impl LinkChange {
    /// Change the link with this index.
    pub fn of(index: u32) -> Self {
        LinkChange {
            index,
            ..Self::default()
        }
    }

    /// Bring it up.
    pub fn up(mut self) -> Self {
        self.up = Some(true);
        self
    }

    /// Bring it down.
    pub fn down(mut self) -> Self {
        self.up = Some(false);
        self
    }

    /// Set the MTU (bytes).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Set the Ethernet address.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Enslave to the bridge with this index (0 = release).
    pub fn master(mut self, index: u32) -> Self {
        self.master = Some(index);
        self
    }

    /// Set the interface alias (netns-kit stores `netns-kit:<run id>` there).
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    /// Move the link into namespace `ns` (the fd must stay open until sent). The link keeps
    /// its name and alias, so a link tagged first is never untagged anywhere.
    pub fn move_to(mut self, ns: BorrowedFd<'_>) -> Self {
        self.netns_fd = Some(ns.as_raw_fd());
        self
    }

    /// Whether the kernel generates an IPv6 link-local address when the link gets carrier
    /// (`false`: addrgenmode none, so no DAD, MLD or router solicitation is ever sent). The
    /// kernel applies this after any up/down in the same message, and a link that already
    /// has carrier keeps the address it got: send it in a change of its own, before `up`.
    pub fn ipv6_link_local(mut self, generate: bool) -> Self {
        self.ipv6_link_local = Some(generate);
        self
    }

    fn build(&self) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.index = self.index;
        if let Some(up) = self.up {
            if up {
                msg.header.flags |= LinkFlags::Up;
            }
            msg.header.change_mask |= LinkFlags::Up;
        }
        if let Some(mtu) = self.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = self.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(m) = self.master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        if let Some(a) = &self.alias {
            msg.attributes.push(LinkAttribute::IfAlias(a.clone()));
        }
        if let Some(fd) = self.netns_fd {
            msg.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        if let Some(generate) = self.ipv6_link_local {
            let mode = if generate {
                In6AddrGenMode::Eui64
            } else {
                In6AddrGenMode::None
            };
            msg.attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                    vec![AfSpecInet6::AddrGenMode(mode)],
                )]));
        }
        msg
    }

    /// Queue the change on `nl`.
    pub fn queue(&self, nl: &mut Netlink) {
        nl.queue(
            RouteNetlinkMessage::SetLink(self.build()),
            0,
            format!("change link #{}", self.index),
        );
    }

    /// Apply the change now.
    pub fn apply(&self, nl: &mut Netlink) -> Result<()> {
        self.queue(nl);
        nl.flush()
    }
}

/// Queue the deletion of the link with this index.
pub fn queue_delete(nl: &mut Netlink, index: u32) {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    nl.queue(
        RouteNetlinkMessage::DelLink(msg),
        0,
        format!("delete link #{index}"),
    );
}

/// Delete the link with this index now.
pub fn delete(nl: &mut Netlink, index: u32) -> Result<()> {
    queue_delete(nl, index);
    nl.flush()
}

/// What netns-kit reads back about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// The alias (`netns-kit:<run id>` on links netns-kit made), if set.
    pub alias: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Index of the master, if enslaved.
    pub master: Option<u32>,
    /// Kind (`veth`, `bridge`, ...), if the kernel reports one.
    pub kind: Option<String>,
    /// MTU in bytes.
    pub mtu: Option<u32>,
    /// Operationally up (IFLA_OPERSTATE `UP`): the kernel's link-watch work has processed
    /// the carrier change and activated the link's queues. Before that, a packet sent on a
    /// fresh veth can be lost (a first ping or SYN then waits for its 1 s retry). Links
    /// without carrier detection (`lo`, dummy, VXLAN) report `UNKNOWN`: false here.
    pub oper_up: bool,
}

/// Every link in the socket's namespace.
pub fn list(nl: &mut Netlink) -> Result<Vec<LinkState>> {
    let answers = nl.dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        "links",
    )?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(state_of(&l)),
            _ => None,
        })
        .collect())
}

/// The link named `name`, if present (one get request, not a dump of every link).
pub fn by_name(nl: &mut Netlink, name: &str) -> Result<Option<LinkState>> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    Ok(get(nl, msg, name)?.filter(|l| l.name == name))
}

/// The link with interface index `index`, if present (one get request).
pub fn by_index(nl: &mut Netlink, index: u32) -> Result<Option<LinkState>> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    Ok(get(nl, msg, &format!("#{index}"))?.filter(|l| l.index == index))
}

fn get(nl: &mut Netlink, msg: LinkMessage, what: &str) -> Result<Option<LinkState>> {
    Ok(
        match nl.get(RouteNetlinkMessage::GetLink(msg), &format!("link {what}"))? {
            Some(RouteNetlinkMessage::NewLink(l)) => Some(state_of(&l)),
            _ => None,
        },
    )
}

/// Wait (polling every millisecond, up to `timeout`) until the link with this index is
/// [operationally up](LinkState::oper_up). A veth end gets there within milliseconds of both
/// ends being up — unless both ends have the same index: the kernel then takes the carrier
/// change for not urgent and processes it up to 1 s later. Give the two ends different
/// indexes.
pub fn wait_oper_up(nl: &mut Netlink, index: u32, timeout: Duration) -> Result<LinkState> {
    let started = Instant::now();
    loop {
        if let Some(link) = list(nl)?.into_iter().find(|l| l.index == index) {
            if link.oper_up {
                return Ok(link);
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::io(
                "wait for operational state UP of",
                format!("link #{index} in {} ({timeout:?})", nl.namespace()),
                io::Error::from(io::ErrorKind::TimedOut),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn state_of(l: &LinkMessage) -> LinkState {
    let mut st = LinkState {
        index: l.header.index,
        name: String::new(),
        alias: None,
        up: l.header.flags.contains(LinkFlags::Up),
        master: None,
        kind: None,
        mtu: None,
        oper_up: false,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => st.name = n.clone(),
            LinkAttribute::IfAlias(a) => st.alias = Some(a.clone()),
            LinkAttribute::Controller(m) => st.master = Some(*m),
            LinkAttribute::Mtu(m) => st.mtu = Some(*m),
            LinkAttribute::OperState(s) => st.oper_up = *s == State::Up,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        st.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    st
}
