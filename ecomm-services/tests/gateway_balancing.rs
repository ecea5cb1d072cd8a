//! Round-robin: requests spread evenly over the instances.

mod support;

use support::client;
use support::ecomm::Ecomm;
use support::upstream::Upstream;

#[tokio::test]
async fn round_robin_spreads_evenly_over_three_instances() {
    let upstreams: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let list = upstreams
        .iter()
        .map(|u| u.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (_gateway, gw) =
        Ecomm::gateway(&["--product-upstreams", &list, "--order-upstreams", &list]);

    let client = client();
    for i in 0..300 {
        let response = client
            .get(format!("http://{gw}/api/products/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    for upstream in &upstreams {
        let gets = upstream.gets();
        assert!(
            (90..=110).contains(&gets),
            "instance {} served {gets} of 300, expected about 100",
            upstream.name
        );
    }
}
