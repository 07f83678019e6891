//! Data-parallel training across hosts (a SageMaker training job with `InstanceCount` > 1):
//! every host holds the whole model, trains on its share of each global batch, and the
//! hosts sum their gradients (and running metrics) before every optimizer step, so that
//! they all take the same step and hold the same weights.
//!
//! The sum is a star over TCP (std only): the first host listens, the others connect; at
//! each reduction every other host sends its vector, the first adds them in host order to
//! its own and sends the result back, so every host gets bit-identical sums whatever the
//! timing. A handshake checks the protocol, the number of hosts, each host's place and a
//! fingerprint of the run (pipeline and model), so hosts of different runs or versions
//! refuse each other. Every read is bounded (a vector has the length this host expects) and
//! times out; a closed connection, a wrong length or a timeout is an error naming the
//! host, never a hang.
//!
//! burn-collective's multi-node mode needs a separate orchestrator process (and a
//! websocket stack) on top of its own protocol; a two-message exchange per step is all a
//! job of a few hosts needs, and it is deterministic by construction.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::TrainError;

/// The hosts of a multi-host run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// Every host's address, in the job's host order; the first listens for the others
    /// (only its port is used to listen; the others' ports are not).
    pub addresses: Vec<SocketAddr>,
    /// This host's place in `addresses`.
    pub rank: usize,
    /// How long to wait for the others: to connect, and for each reduction.
    pub timeout: Duration,
}

/// Most hosts one run spans.
pub const MAX_HOSTS: usize = 64;
const MAGIC: &[u8; 8] = b"AIRLKDP1";

/// The connections of one host to the others.
#[derive(Debug)]
pub(crate) struct HostLink {
    rank: usize,
    world: usize,
    /// The first host: one stream per other host, in host order; the others: the first's.
    streams: Vec<TcpStream>,
}

fn failed(hosts: usize, reason: String) -> TrainError {
    TrainError::Collective {
        devices: hosts,
        reason,
    }
}

impl HostLink {
    /// Connect to the other hosts of `g`; `fingerprint` names the run (hosts of another
    /// run are refused).
    pub(crate) fn connect(g: &HostGroup, fingerprint: &[u8; 32]) -> Result<Self, TrainError> {
        let world = g.addresses.len();
        if !(2..=MAX_HOSTS).contains(&world) || g.rank >= world {
            return Err(failed(
                world,
                format!(
                    "host {} of {world}: 2 to {MAX_HOSTS} hosts, each listed once",
                    g.rank + 1
                ),
            ));
        }
        let deadline = Instant::now() + g.timeout;
        let streams = if g.rank == 0 {
            accept_all(g, fingerprint, deadline)?
        } else {
            vec![dial(g, fingerprint, deadline)?]
        };
        for s in &streams {
            let _ = s.set_nodelay(true);
            s.set_read_timeout(Some(g.timeout))
                .and_then(|()| s.set_write_timeout(Some(g.timeout)))
                .map_err(|e| failed(world, format!("socket: {e}")))?;
        }
        Ok(Self {
            rank: g.rank,
            world,
            streams,
        })
    }

    /// Hosts in the run.
    pub(crate) fn world(&self) -> usize {
        self.world
    }

    /// This host's place.
    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    /// Replace `v` with the sum over every host of its `v` (the same length on each).
    pub(crate) fn all_reduce_sum(&mut self, v: &mut [f32]) -> Result<(), TrainError> {
        let world = self.world;
        let err = |host: usize, e: std::io::Error| failed(world, format!("host {}: {e}", host + 1));
        if self.rank == 0 {
            let mut buf = vec![0u8; v.len() * 4];
            for (i, s) in self.streams.iter_mut().enumerate() {
                s.read_exact(&mut buf).map_err(|e| err(i + 1, e))?;
                for (x, c) in v.iter_mut().zip(buf.chunks_exact(4)) {
                    *x += f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            let out = to_bytes(v);
            for (i, s) in self.streams.iter_mut().enumerate() {
                s.write_all(&out).map_err(|e| err(i + 1, e))?;
            }
        } else {
            let s = &mut self.streams[0];
            s.write_all(&to_bytes(v)).map_err(|e| err(0, e))?;
            let mut buf = vec![0u8; v.len() * 4];
            s.read_exact(&mut buf).map_err(|e| err(0, e))?;
            for (x, c) in v.iter_mut().zip(buf.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Ok(())
    }
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The hello a host sends: magic, hosts, its place, the run's fingerprint.
fn hello(world: usize, rank: usize, fingerprint: &[u8; 32]) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&(world as u32).to_le_bytes());
    h[12..16].copy_from_slice(&(rank as u32).to_le_bytes());
    h[16..].copy_from_slice(fingerprint);
    h
}

/// The first host: accept every other host once, in any order, and answer each hello.
fn accept_all(
    g: &HostGroup,
    fingerprint: &[u8; 32],
    deadline: Instant,
) -> Result<Vec<TcpStream>, TrainError> {
    let world = g.addresses.len();
    let port = g.addresses[0].port();
    let listener = TcpListener::bind(g.addresses[0])
        .or_else(|_| TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))))
        .map_err(|e| failed(world, format!("host 1 cannot listen on port {port}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| failed(world, format!("listen: {e}")))?;
    let mut slots: Vec<Option<TcpStream>> = (1..world).map(|_| None).collect();
    while slots.iter().any(Option::is_none) {
        if Instant::now() > deadline {
            let missing: Vec<String> = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| format!("host {}", i + 2))
                .collect();
            return Err(failed(
                world,
                format!("{} did not join within {:?}", missing.join(", "), g.timeout),
            ));
        }
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(failed(world, format!("accept: {e}"))),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut h = [0u8; 48];
        if stream.read_exact(&mut h).is_err() {
            continue;
        }
        let rank = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
        let why = if &h[..8] != MAGIC {
            Some("it does not speak airlock's protocol".to_owned())
        } else if u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize != world {
            Some(format!(
                "it was told of another number of hosts (this run has {world})"
            ))
        } else if h[16..] != fingerprint[..] {
            Some("it trains another run (pipeline or model differ)".to_owned())
        } else if !(1..world).contains(&rank) || slots[rank - 1].is_some() {
            Some(format!("its place {} is not a free one", rank + 1))
        } else {
            None
        };
        if let Some(why) = why {
            let _ = stream.write_all(&[0]);
            return Err(failed(world, format!("a host was refused: {why}")));
        }
        stream
            .write_all(&[1])
            .map_err(|e| failed(world, format!("host {}: {e}", rank + 1)))?;
        slots[rank - 1] = Some(stream);
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Another host: connect to the first (retrying until the deadline) and say hello.
fn dial(g: &HostGroup, fingerprint: &[u8; 32], deadline: Instant) -> Result<TcpStream, TrainError> {
    let world = g.addresses.len();
    let mut stream = loop {
        match TcpStream::connect_timeout(&g.addresses[0], Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                return Err(failed(
                    world,
                    format!(
                        "host {} cannot reach host 1 at {}: {e}",
                        g.rank + 1,
                        g.addresses[0]
                    ),
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let io = |e: std::io::Error| failed(world, format!("host {} to host 1: {e}", g.rank + 1));
    stream.set_read_timeout(Some(g.timeout)).map_err(io)?;
    stream
        .write_all(&hello(world, g.rank, fingerprint))
        .map_err(io)?;
    let mut ok = [0u8; 1];
    stream.read_exact(&mut ok).map_err(io)?;
    if ok[0] != 1 {
        return Err(failed(
            world,
            format!(
                "host 1 refused host {} (another run, or another number of hosts)",
                g.rank + 1
            ),
        ));
    }
    Ok(stream)
}

/// Sum `grads` across the hosts of `link`: every parameter's gradient, in the model's
/// visiting order (the same on every host), flattened into one vector and summed in one
/// exchange, then put back in its place.
pub(crate) fn sum_gradients<B: burn::tensor::backend::AutodiffBackend>(
    mut grads: burn::optim::GradientsParams,
    model: &airlock_infer::Net<B>,
    link: &mut HostLink,
) -> Result<burn::optim::GradientsParams, TrainError> {
    use burn::module::Module;
    let mut take = Take::<B> {
        grads: &mut grads,
        flat: Vec::new(),
        taken: Vec::new(),
        device: None,
    };
    model.visit(&mut take);
    let Take {
        mut flat,
        taken,
        device,
        ..
    } = take;
    link.all_reduce_sum(&mut flat)?;
    if let Some(device) = device {
        let mut put = Put::<B> {
            grads: &mut grads,
            flat: &flat,
            taken: &taken,
            at: 0,
            next: 0,
            device,
        };
        model.visit(&mut put);
    }
    Ok(grads)
}

/// Takes every parameter's gradient out, flattened, noting (id, shape) in order.
struct Take<'a, B: burn::tensor::backend::AutodiffBackend> {
    grads: &'a mut burn::optim::GradientsParams,
    flat: Vec<f32>,
    taken: Vec<(burn::module::ParamId, Vec<usize>)>,
    device: Option<burn::tensor::Device<B::InnerBackend>>,
}

impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleVisitor<B> for Take<'_, B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.device.get_or_insert_with(|| g.device());
            let shape = g.dims().to_vec();
            if let Ok(values) = g.into_data().to_vec::<f32>() {
                self.flat.extend_from_slice(&values);
                self.taken.push((param.id, shape));
            }
        }
    }
}

/// Puts the summed gradients back, in the order [`Take`] took them.
struct Put<'a, B: burn::tensor::backend::AutodiffBackend> {
    grads: &'a mut burn::optim::GradientsParams,
    flat: &'a [f32],
    taken: &'a [(burn::module::ParamId, Vec<usize>)],
    at: usize,
    next: usize,
    device: burn::tensor::Device<B::InnerBackend>,
}

impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleVisitor<B> for Put<'_, B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) {
        let Some((id, shape)) = self.taken.get(self.next) else {
            return;
        };
        if *id != param.id {
            return;
        }
        let n: usize = shape.iter().product();
        let values = self.flat[self.at..self.at + n].to_vec();
        let t = burn::tensor::Tensor::<B::InnerBackend, D>::from_data(
            burn::tensor::TensorData::new(values, shape.clone()),
            &self.device,
        );
        self.grads.register::<B::InnerBackend, D>(param.id, t);
        self.at += n;
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(port: u16, rank: usize, world: usize) -> HostGroup {
        HostGroup {
            addresses: (0..world)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], if i == 0 { port } else { 0 })))
                .collect(),
            rank,
            timeout: Duration::from_secs(5),
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a port")
    }

    #[test]
    fn three_hosts_sum_to_the_same_bits() {
        let port = free_port();
        let f = [7u8; 32];
        let handles: Vec<_> = (0..3)
            .map(|rank| {
                std::thread::spawn(move || {
                    let mut link = HostLink::connect(&group(port, rank, 3), &f).expect("connect");
                    let mut v = vec![rank as f32 + 0.5, 1e-7 * rank as f32, -1.0];
                    link.all_reduce_sum(&mut v).expect("reduce");
                    v
                })
            })
            .collect();
        let sums: Vec<Vec<f32>> = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect();
        let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert!(sums.iter().all(|s| bits(s) == bits(&sums[0])), "{sums:?}");
        assert_eq!(sums[0][0], 4.5);
        assert_eq!(sums[0][2], -3.0);
    }

    #[test]
    fn a_host_of_another_run_or_size_is_refused_and_nothing_hangs() {
        for (their_world, their_print) in [(2usize, [9u8; 32]), (3, [7u8; 32])] {
            let port = free_port();
            let leader = std::thread::spawn(move || {
                HostLink::connect(&group(port, 0, 2), &[7u8; 32]).map(|_| ())
            });
            let other = HostLink::connect(&group(port, 1, their_world), &their_print).map(|_| ());
            let led = leader.join().expect("join");
            assert!(led.is_err(), "the first host refuses");
            assert!(other.is_err(), "the other is told");
        }
        // Nobody joins: the first host gives up at its deadline.
        let mut g = group(free_port(), 0, 2);
        g.timeout = Duration::from_millis(300);
        let e = HostLink::connect(&g, &[0; 32]).expect_err("alone");
        assert!(e.to_string().contains("did not join"), "{e}");
    }

    #[test]
    fn a_vector_of_the_wrong_length_is_an_error_not_a_hang() {
        let port = free_port();
        let f = [1u8; 32];
        let leader = std::thread::spawn(move || {
            let mut g = group(port, 0, 2);
            g.timeout = Duration::from_millis(500);
            let mut link = HostLink::connect(&g, &f).expect("connect");
            let mut v = vec![0.0f32; 4];
            link.all_reduce_sum(&mut v)
        });
        let mut g = group(port, 1, 2);
        g.timeout = Duration::from_millis(500);
        let mut link = HostLink::connect(&g, &f).expect("connect");
        let mut short = vec![0.0f32; 2];
        let mine = link.all_reduce_sum(&mut short);
        assert!(leader.join().expect("join").is_err());
        assert!(mine.is_err());
    }
}
