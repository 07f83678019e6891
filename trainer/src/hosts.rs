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

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::TrainError;
use crate::training::FitInput;

/// The hosts of a multi-host run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// Every host's address, in the job's host order (resourceconfig.json's `hosts`); the
    /// first listens for the others (only its port is used to listen; the others' ports
    /// are not). One address trains alone, as without a group.
    pub addresses: Vec<SocketAddr>,
    /// This host's place in `addresses` (0 leads: its run is the run).
    pub rank: usize,
    /// How long to wait for the others: to connect, and for each exchange.
    pub timeout: Duration,
}

impl HostGroup {
    /// Whether several hosts train together (a group of one trains alone).
    pub fn is_several(&self) -> bool {
        self.addresses.len() > 1
    }

    /// The group's shape checked: 1 to [`MAX_HOSTS`] hosts, `rank` one of them.
    pub fn check(&self) -> Result<(), TrainError> {
        let hosts = self.addresses.len();
        if !(1..=MAX_HOSTS).contains(&hosts) || self.rank >= hosts {
            return Err(failed(
                hosts,
                format!(
                    "host {} of {hosts}: a run has 1 to {MAX_HOSTS} hosts, and this host is one of them",
                    self.rank + 1
                ),
            ));
        }
        Ok(())
    }
}

/// Most hosts one run spans.
pub const MAX_HOSTS: usize = 64;
/// The protocol's name and version; hosts of another version refuse each other.
const MAGIC: &[u8; 8] = b"AIRLKDP2";
/// The protocol's name alone (a peer with another last byte speaks another version).
const FAMILY: &[u8; 7] = b"AIRLKDP";
/// Longest wait for the hello of a connection that was accepted.
const HELLO_WAIT: Duration = Duration::from_secs(10);

/// The connections of one host to the others.
#[derive(Debug)]
pub(crate) struct HostLink {
    rank: usize,
    world: usize,
    timeout: Duration,
    /// Exchanges so far: every frame names its exchange, so hosts out of step are caught.
    exchange: u64,
    /// The first host: one stream per other host, in host order; the others: the first's.
    streams: Vec<TcpStream>,
}

fn failed(hosts: usize, reason: String) -> TrainError {
    TrainError::Hosts { hosts, reason }
}

impl HostLink {
    /// Connect to the other hosts of `g`; `fingerprint` names the run (hosts of another
    /// run are refused).
    pub(crate) fn connect(g: &HostGroup, fingerprint: &[u8; 32]) -> Result<Self, TrainError> {
        g.check()?;
        let world = g.addresses.len();
        if world < 2 {
            return Err(failed(
                world,
                "one host has no one to train with".to_owned(),
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
            timeout: g.timeout,
            exchange: 0,
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

    /// Replace `v` with the sum over every host of its `v` (the same length on each):
    /// the first host adds the others' in host order to its own and sends the sum back,
    /// so every host gets the same bits.
    pub(crate) fn all_reduce_sum(&mut self, v: &mut [f32]) -> Result<(), TrainError> {
        self.exchange += 1;
        let mut buf = vec![0u8; v.len() * 4];
        if self.rank == 0 {
            for i in 0..self.streams.len() {
                self.receive(i, &mut buf)?;
                for (x, c) in v.iter_mut().zip(buf.chunks_exact(4)) {
                    *x += f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            self.send_all(v)
        } else {
            self.send(0, v)?;
            self.receive(0, &mut buf)?;
            from_bytes(&buf, v);
            Ok(())
        }
    }

    /// Replace `v` with the first host's `v` (the same length on each).
    pub(crate) fn share_first(&mut self, v: &mut [f32]) -> Result<(), TrainError> {
        self.exchange += 1;
        if self.rank == 0 {
            self.send_all(v)
        } else {
            let mut buf = vec![0u8; v.len() * 4];
            self.receive(0, &mut buf)?;
            from_bytes(&buf, v);
            Ok(())
        }
    }

    /// The host at the other end of stream `i`, 0-based.
    fn peer_of(&self, i: usize) -> usize {
        if self.rank == 0 { i + 1 } else { 0 }
    }

    fn send_all(&mut self, v: &[f32]) -> Result<(), TrainError> {
        let frame = frame(self.exchange, v);
        for i in 0..self.streams.len() {
            let peer = self.peer_of(i);
            self.streams[i]
                .write_all(&frame)
                .map_err(|e| self.io_error(peer, &e))?;
        }
        Ok(())
    }

    fn send(&mut self, i: usize, v: &[f32]) -> Result<(), TrainError> {
        let peer = self.peer_of(i);
        let frame = frame(self.exchange, v);
        self.streams[i]
            .write_all(&frame)
            .map_err(|e| self.io_error(peer, &e))
    }

    /// Read one frame from stream `i` into `buf`: it must be this exchange's, with
    /// exactly `buf`'s length (nothing longer is ever read or allocated).
    fn receive(&mut self, i: usize, buf: &mut [u8]) -> Result<(), TrainError> {
        let peer = self.peer_of(i);
        let mut header = [0u8; 16];
        self.streams[i]
            .read_exact(&mut header)
            .map_err(|e| self.io_error(peer, &e))?;
        let (exchange, values) = parse_header(&header);
        if exchange != self.exchange {
            return Err(failed(
                self.world,
                format!(
                    "host {} is at exchange {exchange}, host {} at {} (the hosts are out of step)",
                    peer + 1,
                    self.rank + 1,
                    self.exchange
                ),
            ));
        }
        if values != (buf.len() / 4) as u64 {
            return Err(failed(
                self.world,
                format!(
                    "host {} sent {values} values where host {} has {} (do they train the same model?)",
                    peer + 1,
                    self.rank + 1,
                    buf.len() / 4
                ),
            ));
        }
        self.streams[i]
            .read_exact(buf)
            .map_err(|e| self.io_error(peer, &e))
    }

    fn io_error(&self, peer: usize, e: &std::io::Error) -> TrainError {
        failed(self.world, io_reason(peer, e, self.timeout))
    }
}

/// What an I/O failure with host `peer` (0-based) means, in words.
fn io_reason(peer: usize, e: &std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("host {} did not answer within {timeout:?}", peer + 1)
        }
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => format!(
            "host {} closed the connection (it stopped or failed: see its log)",
            peer + 1
        ),
        _ => format!("host {}: {e}", peer + 1),
    }
}

/// A frame: the exchange's number and the count of values (little-endian u64s), then the
/// values as little-endian f32s.
fn frame(exchange: u64, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + v.len() * 4);
    out.extend_from_slice(&exchange.to_le_bytes());
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn parse_header(h: &[u8; 16]) -> (u64, u64) {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(w)
    };
    (word(0), word(8))
}

fn from_bytes(buf: &[u8], v: &mut [f32]) {
    for (x, c) in v.iter_mut().zip(buf.chunks_exact(4)) {
        *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
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

/// Why the first host refuses hello `h` (`None`: a stranger that does not speak the
/// protocol, ignored; `Some(Ok(rank))`: welcome).
fn judge(
    h: &[u8; 48],
    world: usize,
    fingerprint: &[u8; 32],
    taken: &[Option<TcpStream>],
) -> Option<Result<usize, String>> {
    if &h[..7] != FAMILY {
        return None;
    }
    let rank = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
    let theirs = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    Some(if &h[..8] != MAGIC {
        Err("it speaks another version of airlock's protocol (another airlock version)".to_owned())
    } else if theirs != world {
        Err(format!(
            "it was told of {theirs} hosts, this run has {world}"
        ))
    } else if h[16..] != fingerprint[..] {
        Err(format!(
            "host {} trains another run (pipeline, data, model or airlock version differ)",
            rank + 1
        ))
    } else if !(1..world).contains(&rank) || taken[rank - 1].is_some() {
        Err(format!("its place {} is not a free one", rank + 1))
    } else {
        Ok(rank)
    })
}

/// The first host: accept every other host once, in any order, and answer each hello.
/// A connection that does not speak the protocol is dropped; a host of another run,
/// version or size is refused, and so is the run.
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let missing: Vec<String> = (0..slots.len())
                .filter(|&i| slots[i].is_none())
                .map(|i| format!("host {}", i + 2))
                .collect();
            return Err(failed(
                world,
                format!("{} did not join within {:?}", missing.join(", "), g.timeout),
            ));
        }
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(failed(world, format!("accept: {e}"))),
        };
        let mut h = [0u8; 48];
        let wait = left.clamp(Duration::from_millis(1), HELLO_WAIT);
        if stream.set_nonblocking(false).is_err()
            || stream.set_read_timeout(Some(wait)).is_err()
            || stream.read_exact(&mut h).is_err()
        {
            continue;
        }
        match judge(&h, world, fingerprint, &slots) {
            None => {}
            Some(Err(why)) => {
                let mut no = vec![0u8];
                let told = &why.as_bytes()[..why.len().min(255)];
                no.push(told.len() as u8);
                no.extend_from_slice(told);
                let _ = stream.write_all(&no);
                return Err(failed(world, format!("a host was refused: {why}")));
            }
            Some(Ok(rank)) => {
                stream
                    .write_all(&[1])
                    .map_err(|e| failed(world, io_reason(rank, &e, g.timeout)))?;
                slots[rank - 1] = Some(stream);
            }
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Another host: connect to the first (retrying, with a growing pause, until the
/// deadline) and say hello.
fn dial(g: &HostGroup, fingerprint: &[u8; 32], deadline: Instant) -> Result<TcpStream, TrainError> {
    let world = g.addresses.len();
    let mut pause = Duration::from_millis(50);
    let mut stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left.clamp(Duration::from_millis(1), Duration::from_secs(2));
        match TcpStream::connect_timeout(&g.addresses[0], attempt) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(failed(
                    world,
                    format!(
                        "host {} cannot reach host 1 at {} within {:?}: {e}",
                        g.rank + 1,
                        g.addresses[0],
                        g.timeout
                    ),
                ));
            }
            Err(_) => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    };
    let io = |e: std::io::Error| failed(world, io_reason(0, &e, g.timeout));
    stream.set_read_timeout(Some(g.timeout)).map_err(io)?;
    stream.set_write_timeout(Some(g.timeout)).map_err(io)?;
    stream
        .write_all(&hello(world, g.rank, fingerprint))
        .map_err(io)?;
    let mut ok = [0u8; 1];
    match stream.read_exact(&mut ok) {
        Ok(()) if ok[0] == 1 => Ok(stream),
        Ok(()) => {
            // The reason, at most 255 bytes.
            let mut len = [0u8; 1];
            let mut why = Vec::new();
            if stream.read_exact(&mut len).is_ok() {
                why = vec![0u8; usize::from(len[0])];
                if stream.read_exact(&mut why).is_err() {
                    why.clear();
                }
            }
            Err(refused(g, &String::from_utf8_lossy(&why)))
        }
        // The first host closes at once a host it refuses (and may close before its
        // answer is read).
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            Err(refused(g, ""))
        }
        Err(e) => Err(io(e)),
    }
}

fn refused(g: &HostGroup, why: &str) -> TrainError {
    let why = if why.is_empty() {
        "another run, airlock version or number of hosts: see host 1's log"
    } else {
        why
    };
    failed(
        g.addresses.len(),
        format!("host 1 refused host {}: {why}", g.rank + 1),
    )
}

/// What hosts of one run agree on before they train together: airlock's version, the
/// model (with its parameter count), task, training settings and a digest of the
/// standardized data, so that hosts of different runs, data, splits or versions refuse
/// each other.
pub(crate) fn run_fingerprint(input: &FitInput) -> [u8; 32] {
    use sha2::Digest;
    let d = &input.description;
    let parameters: usize = d
        .trained()
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    let mut h = sha2::Sha256::new();
    h.update(format!(
        "airlock {}|{d:?}|{parameters}|{}|{}|{}|{}|{}|{:?}|{}|{}|",
        env!("CARGO_PKG_VERSION"),
        input.learning_rate,
        input.weight_decay,
        input.epochs,
        input.batch_size,
        input.seed,
        input.proximal_mu,
        input.initial.is_some(),
        input.dp.is_some(),
    ));
    for part in [&input.x_train, &input.y_train, &input.x_val, &input.y_val] {
        h.update((part.len() as u64).to_le_bytes());
        for chunk in part.chunks(4096) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            h.update(&bytes);
        }
    }
    h.finalize().into()
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
        unreadable: None,
    };
    model.visit(&mut take);
    let Take {
        mut flat,
        taken,
        device,
        unreadable,
        ..
    } = take;
    if let Some(why) = unreadable {
        return Err(failed(
            link.world(),
            format!("a gradient cannot be sent: {why}"),
        ));
    }
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
    /// Why a gradient could not be read as f32s (then the step fails).
    unreadable: Option<String>,
}

impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleVisitor<B> for Take<'_, B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.device.get_or_insert_with(|| g.device());
            let shape = g.dims().to_vec();
            match g.into_data().to_vec::<f32>() {
                Ok(values) => {
                    self.flat.extend_from_slice(&values);
                    self.taken.push((param.id, shape));
                }
                Err(e) => {
                    self.unreadable.get_or_insert_with(|| format!("{e:?}"));
                }
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

/// Give every host the first host's batch-norm running statistics (each host's follow
/// its own shares of the batches): the kept statistics are the first host's, as a
/// data-parallel run over devices keeps the first device's, and every host validates and
/// writes the same model. Nothing is exchanged for a model without batch norm.
pub(crate) fn share_running_stats<B: burn::prelude::Backend>(
    model: &airlock_infer::Net<B>,
    link: &mut HostLink,
) -> Result<(), TrainError> {
    use burn::module::{Module, RunningState};
    use burn::tensor::Tensor;
    let states: Vec<&RunningState<Tensor<B, 1>>> = model
        .convs
        .iter()
        .filter_map(|c| c.norm.as_ref())
        .flat_map(|n| [&n.running_mean, &n.running_var])
        .collect();
    if states.is_empty() {
        return Ok(());
    }
    let mut flat = Vec::new();
    let mut lens = Vec::with_capacity(states.len());
    for s in &states {
        let values = s
            .value_sync()
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| failed(link.world(), format!("batch norm statistics: {e:?}")))?;
        lens.push(values.len());
        flat.extend_from_slice(&values);
    }
    link.share_first(&mut flat)?;
    let mut at = 0;
    for (s, n) in states.into_iter().zip(lens) {
        // A clone shares its value with the model's state: mapping it sets the model's.
        let _ = s.clone().map(&mut SetTo {
            values: &flat[at..at + n],
        });
        at += n;
    }
    Ok(())
}

/// Sets a running state's value to `values` (of its shape).
struct SetTo<'a> {
    values: &'a [f32],
}

impl<B: burn::prelude::Backend> burn::module::ModuleMapper<B> for SetTo<'_> {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<B, D>> {
        let (id, old, mapper) = param.consume();
        let t = burn::tensor::Tensor::<B, D>::from_data(
            burn::tensor::TensorData::new(self.values.to_vec(), old.dims()),
            &old.device(),
        );
        burn::module::Param::from_mapped_value(id, t, mapper)
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
            let mut link = HostLink::connect(&group(port, 0, 2), &f).expect("connect");
            let mut v = vec![0.0f32; 4];
            link.all_reduce_sum(&mut v)
        });
        let mut link = HostLink::connect(&group(port, 1, 2), &f).expect("connect");
        let started = Instant::now();
        let mut short = vec![0.0f32; 2];
        let mine = link.all_reduce_sum(&mut short).expect_err("no sum");
        let led = leader.join().expect("join").expect_err("refused");
        assert!(
            led.to_string()
                .contains("host 2 sent 2 values where host 1 has 4"),
            "{led}"
        );
        assert!(
            mine.to_string().contains("host 1 closed the connection"),
            "{mine}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "at once, not at a timeout"
        );
    }

    /// A peer that passed the handshake, then sends `frame` (raw bytes) to the first host.
    fn first_host_reading(frame: Vec<u8>, values: usize) -> TrainError {
        let port = free_port();
        let f = [3u8; 32];
        let leader = std::thread::spawn(move || {
            let mut g = group(port, 0, 2);
            g.timeout = Duration::from_millis(700);
            let mut link = HostLink::connect(&g, &f).expect("connect");
            let mut v = vec![1.0f32; values];
            link.all_reduce_sum(&mut v).expect_err("refused")
        });
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        s.write_all(&hello(2, 1, &f)).expect("hello");
        let mut ok = [0u8; 1];
        s.read_exact(&mut ok).expect("welcome");
        assert_eq!(ok[0], 1);
        s.write_all(&frame).expect("frame");
        let e = leader.join().expect("join");
        drop(s);
        e
    }

    #[test]
    fn frames_announcing_another_length_or_exchange_are_refused_unread() {
        // A length no host could hold: refused from the header alone.
        let mut huge = Vec::new();
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let e = first_host_reading(huge, 3);
        assert!(
            e.to_string()
                .contains("host 2 sent 18446744073709551615 values"),
            "{e}"
        );
        // Another exchange's frame: the hosts are out of step.
        let e = first_host_reading(frame(7, &[1.0, 2.0, 3.0]), 3);
        assert!(e.to_string().contains("host 2 is at exchange 7"), "{e}");
        // A frame cut short: a timeout naming the host, not a hang.
        let mut cut = frame(1, &[1.0, 2.0, 3.0]);
        cut.truncate(20);
        let e = first_host_reading(cut, 3);
        assert!(
            e.to_string().contains("host 2 did not answer within"),
            "{e}"
        );
        // A stranger that does not speak the protocol is ignored; a group that is no
        // group is refused.
        assert!(judge(&[b'x'; 48], 2, &[0; 32], &[None]).is_none());
        let bad = HostGroup {
            addresses: vec![SocketAddr::from(([127, 0, 0, 1], 1))],
            rank: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn the_first_hosts_values_reach_every_host() {
        let port = free_port();
        let f = [5u8; 32];
        let other = std::thread::spawn(move || {
            let mut link = HostLink::connect(&group(port, 1, 2), &f).expect("connect");
            let mut v = vec![9.0f32, 9.0];
            link.share_first(&mut v).expect("share");
            v
        });
        let mut link = HostLink::connect(&group(port, 0, 2), &f).expect("connect");
        let mut v = vec![1.5f32, -0.0];
        link.share_first(&mut v).expect("share");
        let theirs = other.join().expect("join");
        assert_eq!(theirs[0].to_bits(), 1.5f32.to_bits());
        assert_eq!(theirs[1].to_bits(), (-0.0f32).to_bits());
    }
}
