//! Which backend served a connection to a Kubernetes Service: the node's connection tracking
//! table, asked over netlink (`NETLINK_NETFILTER`, the ctnetlink `IPCTNL_MSG_CT_GET` request
//! the `conntrack -G` tool sends).
//!
//! kube-proxy (iptables, nftables and IPVS with `conntrack` on) and most CNIs that keep its
//! NAT translate a Service's virtual IP to one backend per connection in the node's network
//! namespace, and conntrack remembers the choice: the entry whose original tuple is
//! `client:port → service-ip:port` has the reply tuple `backend:port → client:port`. The
//! pod's socket (where the cgroup hooks count) only ever sees the Service address, so this
//! lookup is what makes the backend, and with it the zone, exact.

use std::{
    fs::File,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
    conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple},
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_NETFILTER};

/// How long one lookup may wait for the kernel's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest answer read: one conntrack entry is a few hundred bytes.
const ANSWER_BYTES: usize = 8192;

/// Why conntrack cannot be asked.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The network namespace file cannot be opened or entered.
    #[error("--kubernetes.conntrack-netns {path}: {source}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The netlink socket cannot be made, or a request cannot be sent or answered.
    #[error("conntrack netlink {op}: {source}")]
    Socket {
        /// What failed.
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered with something that is not a conntrack entry.
    #[error("conntrack netlink answer: {0}")]
    Answer(String),
}

/// One connection as its first packet left the client (the original tuple).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connection {
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// The client.
    pub source: SocketAddr,
    /// The Service address.
    pub destination: SocketAddr,
}

/// A netlink socket to one network namespace's conntrack table.
pub struct Conntrack {
    socket: Socket,
    sequence: u32,
    answer: Vec<u8>,
}

impl std::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conntrack").field("sequence", &self.sequence).finish_non_exhaustive()
    }
}

impl Conntrack {
    /// Opens a socket to the conntrack table of the network namespace at `netns` (a
    /// `/run/netns/NAME` or `/proc/PID/ns/net` file), or of the agent's own namespace.
    ///
    /// # Errors
    /// [`ConntrackError::Netns`] when the namespace cannot be entered (`setns` needs
    /// CAP_SYS_ADMIN), [`ConntrackError::Socket`] when the socket cannot be made.
    pub fn open(netns: Option<&Path>) -> Result<Self, ConntrackError> {
        let socket = match netns {
            None => socket()?,
            // A socket belongs to the namespace it was made in: make it on a thread that
            // entered the namespace, and keep using it from here.
            Some(path) => std::thread::scope(|s| {
                s.spawn(|| {
                    let netns = |source| ConntrackError::Netns { path: path.to_owned(), source };
                    let file = File::open(path).map_err(netns)?;
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| netns(e.into()))?;
                    socket()
                })
                .join()
                .unwrap_or_else(|_| Err(ConntrackError::Answer("the netns thread panicked".into())))
            })?,
        };
        Ok(Self { socket, sequence: 0, answer: vec![0; ANSWER_BYTES] })
    }

    /// The address that answered `connection`: the reply tuple's source (the backend after
    /// DNAT; the Service address itself when no NAT happened). `None` when conntrack has no
    /// such entry (expired, or never tracked).
    ///
    /// # Errors
    /// [`ConntrackError`] when the kernel cannot be asked or answers nonsense.
    pub fn reply_source(
        &mut self,
        connection: &Connection,
    ) -> Result<Option<SocketAddr>, ConntrackError> {
        let family = match connection.source.ip() {
            IpAddr::V4(_) => NetfilterProtoFamily::IPv4,
            IpAddr::V6(_) => NetfilterProtoFamily::IPv6,
        };
        let original = ConntrackAttribute::CtaTupleOrig(vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(connection.source.ip()),
                IPTuple::DestinationAddress(connection.destination.ip()),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(Protocol::from(connection.protocol)),
                ProtoTuple::SourcePort(connection.source.port()),
                ProtoTuple::DestinationPort(connection.destination.port()),
            ]),
        ]);
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = self.sequence;
        let mut request = NetlinkMessage::new(
            header,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(family, 0, 0),
                ConntrackMessage::Get(vec![original]),
            )),
        );
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        let io = |op| move |source| ConntrackError::Socket { op, source };
        self.socket.send(&bytes, 0).map_err(io("send"))?;
        loop {
            let n = self.socket.recv(&mut &mut self.answer[..], 0).map_err(io("receive"))?;
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(&self.answer[..n])
                .map_err(|e| ConntrackError::Answer(e.to_string()))?;
            if message.header.sequence_number != self.sequence {
                continue; // the late answer to an earlier request that timed out
            }
            return match message.payload {
                NetlinkPayload::InnerMessage(m) => Ok(reply_source_of(&m)),
                NetlinkPayload::Error(e) => match e.code {
                    Some(code) if code.get() == -libc::ENOENT => Ok(None),
                    _ => Err(ConntrackError::Socket { op: "get", source: e.to_io() }),
                },
                other => Err(ConntrackError::Answer(format!("unexpected {other:?}"))),
            };
        }
    }
}

/// A `NETLINK_NETFILTER` socket bound to the kernel, with a receive timeout.
fn socket() -> Result<Socket, ConntrackError> {
    let io = |op| move |source| ConntrackError::Socket { op, source };
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("socket"))?;
    socket.bind_auto().map_err(io("bind"))?;
    socket.connect(&NetlinkAddr::new(0, 0)).map_err(io("connect"))?;
    let timeout = nix::sys::time::TimeVal::new(0, ANSWER_TIMEOUT.as_micros() as i64);
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(|e| ConntrackError::Socket { op: "SO_RCVTIMEO", source: e.into() })?;
    Ok(socket)
}

/// The reply tuple's source address and port in a conntrack entry.
fn reply_source_of(message: &NetfilterMessage) -> Option<SocketAddr> {
    let NetfilterMessageInner::Conntrack(
        ConntrackMessage::New(attributes) | ConntrackMessage::Get(attributes),
    ) = &message.inner
    else {
        return None;
    };
    let reply = attributes.iter().find_map(|a| match a {
        ConntrackAttribute::CtaTupleReply(t) => Some(t),
        _ => None,
    })?;
    let ip = reply.iter().find_map(|t| match t {
        Tuple::Ip(ips) => ips.iter().find_map(|i| match i {
            IPTuple::SourceAddress(a) => Some(*a),
            _ => None,
        }),
        _ => None,
    })?;
    let port = reply
        .iter()
        .find_map(|t| match t {
            Tuple::Proto(p) => p.iter().find_map(|p| match p {
                ProtoTuple::SourcePort(port) => Some(*port),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or(0);
    Some(SocketAddr::new(ip, port))
}
