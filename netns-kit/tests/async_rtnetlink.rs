//! The `rtnetlink` feature: an rtnetlink `Handle` whose socket was opened inside a fresh
//! namespace sees that namespace's links only, and what it adds netns-kit sees there too.

#![cfg(feature = "rtnetlink")]

mod privileged_support;

use futures_util::TryStreamExt;
use netns_kit::link;
use netns_kit::rtnetlink::LinkBridge;
use netns_kit::Netns;
use privileged_support::privileged;

#[tokio::test]
async fn an_rtnetlink_handle_opened_in_a_fresh_namespace_lists_lo_and_adds_links_there() {
    if !privileged("rtnetlink handle in a namespace") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let (connection, handle, _messages) = ns.rtnetlink_connection().await.unwrap();
    let connection = tokio::spawn(connection);

    let links: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
    let names: Vec<String> = links
        .iter()
        .flat_map(|l| &l.attributes)
        .filter_map(|a| match a {
            netns_kit::netlink_packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["lo".to_string()]);

    // One link built by rtnetlink, one by netns-kit's builder: the same LinkMessage type.
    handle
        .link()
        .add(LinkBridge::new("nk-rt0").build())
        .execute()
        .await
        .unwrap();
    handle
        .link()
        .add(link::bridge("nk-kit0").build().unwrap())
        .execute()
        .await
        .unwrap();

    let mut nl = ns.netlink().unwrap();
    for name in ["nk-rt0", "nk-kit0"] {
        let seen = link::by_name(&mut nl, name).unwrap();
        assert_eq!(
            seen.and_then(|l| l.kind).as_deref(),
            Some("bridge"),
            "{name} in the namespace"
        );
        // Only read the host's namespace: the link did not land there.
        let mut host = Netns::current_process().unwrap().netlink().unwrap();
        assert_eq!(link::by_name(&mut host, name).unwrap(), None);
    }
    connection.abort();
}

#[tokio::test]
async fn any_rtnetlink_constructor_can_be_run_inside_the_namespace() {
    if !privileged("rtnetlink strict-check connection in a namespace") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let (connection, handle, _messages) = ns
        .rtnetlink_connection_with(netns_kit::rtnetlink::new_connection_with_strict_check)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let links: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
    assert_eq!(links.len(), 1, "a fresh namespace holds only lo: {links:?}");
    assert_eq!(links[0].header.index, 1);
    connection.abort();
}
