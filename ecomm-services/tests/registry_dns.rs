//! DNS answers come from the same state as the HTTP view.

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use support::dns_query::query;
use support::ecomm::Ecomm;
use support::{register, resolve};

#[tokio::test]
async fn srv_and_a_answers_match_the_http_view() {
    let (_registry, http, dns) = Ecomm::registry(&[]);
    assert_eq!(
        register(http, "product", "product-1", "127.0.0.21", 8001, 60)
            .await
            .status(),
        201
    );
    assert_eq!(
        register(http, "product", "product-2", "127.0.0.22", 8011, 60)
            .await
            .status(),
        201
    );

    let view = resolve(http, "product").await;
    let http_view: BTreeSet<(IpAddr, u16)> = view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["address"].as_str().unwrap().parse().unwrap(),
                i["port"].as_u64().unwrap() as u16,
            )
        })
        .collect();

    let srv = query(dns, "product.service.ecomm.", RecordType::SRV).await;
    assert_eq!(srv.response_code(), ResponseCode::NoError);
    let mut srv_view = BTreeSet::new();
    for answer in srv.answers() {
        assert!(answer.ttl() <= 5, "TTL {} exceeds 5 s", answer.ttl());
        let RData::SRV(record) = answer.data() else {
            panic!("expected SRV, got {answer:?}");
        };
        let target = record.target().clone();
        let address = srv
            .additionals()
            .iter()
            .find(|a| a.name() == &target)
            .and_then(|a| match a.data() {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .expect("an A record for every SRV target");
        srv_view.insert((address, record.port()));
    }
    assert_eq!(srv_view, http_view);

    let a = query(dns, "product.service.ecomm.", RecordType::A).await;
    let a_view: BTreeSet<IpAddr> = a
        .answers()
        .iter()
        .map(|r| match r.data() {
            RData::A(a) => IpAddr::V4(a.0),
            other => panic!("expected A, got {other:?}"),
        })
        .collect();
    let http_addresses: BTreeSet<IpAddr> = http_view.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(a_view, http_addresses);
    assert!(a.answers().iter().all(|r| r.ttl() <= 5));

    let one = query(dns, "product-2.product.service.ecomm.", RecordType::A).await;
    assert_eq!(one.answers().len(), 1);
    assert_eq!(
        one.answers()[0].data(),
        &RData::A("127.0.0.22".parse::<std::net::Ipv4Addr>().unwrap().into())
    );
}

#[tokio::test]
async fn unknown_services_are_nxdomain() {
    let (_registry, http, dns) = Ecomm::registry(&[]);
    assert_eq!(
        register(http, "product", "product-1", "127.0.0.21", 8001, 60)
            .await
            .status(),
        201
    );
    let answer = query(dns, "nosuch.service.ecomm.", RecordType::SRV).await;
    assert_eq!(answer.response_code(), ResponseCode::NXDomain);
    assert!(answer.answers().is_empty());
    let outside = query(dns, "example.org.", RecordType::A).await;
    assert_eq!(outside.response_code(), ResponseCode::Refused);
}
