//! DNS over UDP from the registry's state: `<service>.service.ecomm` answers A/AAAA with every
//! live instance and SRV with `<id>.<service>.service.ecomm` targets (their addresses in the
//! additional section); `<id>.<service>.service.ecomm` answers that instance's address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use tokio::net::UdpSocket;

use super::wire::ServiceView;
use super::Registry;
use crate::http::{Counter, Metrics, Shutdown};

/// The zone answered: `<service>.service.ecomm.`
pub const ZONE_SUFFIX: &str = ".service.ecomm";

/// TTL of every answer (seconds); short so clients follow the registry closely.
pub const DNS_TTL_SECONDS: u32 = 5;

/// Answers queries from a [`Registry`].
pub struct DnsHandler {
    registry: Arc<Registry>,
    queries: Counter,
    nxdomain: Counter,
}

impl DnsHandler {
    /// A handler over `registry`, counting queries in `metrics`.
    pub fn new(registry: Arc<Registry>, metrics: &Metrics) -> Self {
        Self {
            registry,
            queries: metrics.counter("registry_dns_queries_total", "DNS queries answered.", &[]),
            nxdomain: metrics.counter(
                "registry_dns_nxdomain_total",
                "DNS queries answered NXDOMAIN (unknown service or instance).",
                &[],
            ),
        }
    }

    /// Builds the answer records for one question, or the response code to send instead.
    fn answer(&self, name: &Name, qtype: RecordType) -> Result<Answer, ResponseCode> {
        let text = name.to_ascii().to_ascii_lowercase();
        let text = text.trim_end_matches('.');
        let Some(prefix) = text.strip_suffix(ZONE_SUFFIX) else {
            return Err(ResponseCode::Refused);
        };
        let (instance, service) = match prefix.split_once('.') {
            Some((instance, service)) => (Some(instance), service),
            None => (None, prefix),
        };
        if service.contains('.') {
            return Err(ResponseCode::NXDomain);
        }
        let view = self.registry.resolve(service);
        if view.instances.is_empty() {
            return Err(ResponseCode::NXDomain);
        }
        let mut answer = Answer::default();
        match instance {
            None => {
                for instance in &view.instances {
                    match qtype {
                        RecordType::SRV | RecordType::ANY => {
                            let target = target_name(service, &instance.id)?;
                            answer.answers.push(Record::from_rdata(
                                name.clone(),
                                DNS_TTL_SECONDS,
                                RData::SRV(SRV::new(1, 1, instance.port, target.clone())),
                            ));
                            answer
                                .additionals
                                .push(address_record(target, instance.address));
                        }
                        RecordType::A if instance.address.is_ipv4() => {
                            answer
                                .answers
                                .push(address_record(name.clone(), instance.address));
                        }
                        RecordType::AAAA if instance.address.is_ipv6() => {
                            answer
                                .answers
                                .push(address_record(name.clone(), instance.address));
                        }
                        _ => {}
                    }
                }
            }
            Some(id) => {
                let instance = find(&view, id).ok_or(ResponseCode::NXDomain)?;
                let wanted = matches!(
                    (qtype, instance.address),
                    (RecordType::A | RecordType::ANY, IpAddr::V4(_))
                        | (RecordType::AAAA | RecordType::ANY, IpAddr::V6(_))
                );
                if wanted {
                    answer
                        .answers
                        .push(address_record(name.clone(), instance.address));
                }
            }
        }
        Ok(answer)
    }
}

#[derive(Default)]
struct Answer {
    answers: Vec<Record>,
    additionals: Vec<Record>,
}

fn find<'a>(view: &'a ServiceView, id: &str) -> Option<&'a super::wire::InstanceView> {
    view.instances.iter().find(|i| i.id == id)
}

fn target_name(service: &str, id: &str) -> Result<Name, ResponseCode> {
    Name::from_ascii(format!("{id}.{service}{ZONE_SUFFIX}.")).map_err(|_| ResponseCode::ServFail)
}

fn address_record(name: Name, address: IpAddr) -> Record {
    let rdata = match address {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, DNS_TTL_SECONDS, rdata)
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.queries.inc();
        let builder = MessageResponseBuilder::from_message_request(request);
        let fail = |code: ResponseCode| {
            let mut header = Header::response_from_request(request.header());
            header.set_response_code(code);
            header
        };
        if request.op_code() != OpCode::Query || request.message_type() != MessageType::Query {
            let header = fail(ResponseCode::NotImp);
            return send(
                &mut response_handle,
                builder.error_msg(request.header(), ResponseCode::NotImp),
                header,
            )
            .await;
        }
        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => {
                let header = fail(ResponseCode::FormErr);
                return send(
                    &mut response_handle,
                    builder.error_msg(request.header(), ResponseCode::FormErr),
                    header,
                )
                .await;
            }
        };
        let name: Name = info.query.name().into();
        match self.answer(&name, info.query.query_type()) {
            Ok(answer) => {
                let mut header = Header::response_from_request(request.header());
                header.set_authoritative(true);
                let response = builder.build(
                    header,
                    answer.answers.iter(),
                    std::iter::empty(),
                    std::iter::empty(),
                    answer.additionals.iter(),
                );
                send(&mut response_handle, response, header).await
            }
            Err(code) => {
                if code == ResponseCode::NXDomain {
                    self.nxdomain.inc();
                }
                let header = fail(code);
                send(
                    &mut response_handle,
                    builder.error_msg(request.header(), code),
                    header,
                )
                .await
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    header: Header,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(%error, "failed to send DNS response");
            let mut header = header;
            header.set_response_code(ResponseCode::ServFail);
            header.into()
        }
    }
}

/// Serves DNS on `socket` until `shutdown`.
pub async fn serve_dns(
    socket: UdpSocket,
    handler: DnsHandler,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let addr: SocketAddr = socket.local_addr()?;
    tracing::info!(%addr, "dns listening");
    let mut server = ServerFuture::new(handler);
    server.register_socket(socket);
    tokio::select! {
        result = server.block_until_done() => result.map_err(std::io::Error::other),
        () = shutdown.wait() => {
            let _ = server.shutdown_gracefully().await;
            Ok(())
        }
    }
}
