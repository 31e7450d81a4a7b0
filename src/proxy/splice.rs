//! Large proxied bodies relayed without passing through the process (Linux `splice(2)`):
//! from the system's socket into a pipe and from the pipe into the person's socket, the
//! kernel moving page references instead of copying bytes in and out of user space, as
//! HAProxy does. At 50 concurrent 1 MB downloads on two cores, those two copies were most of
//! what the login proxy added to the download (ADR 0010 addendum).
//!
//! hyper still frames the answer (its head, `Content-Length`) and counts its bytes. The body
//! it is given is made of *filler* frames: slices of one static buffer, as many bytes as the
//! system's socket still owes. The person's connection (`app::listener::Guarded`) writes
//! through `Slot::poll_write_vectored`, which writes every other byte as usual and, for a
//! filler slice, moves that many bytes from the system's socket instead. hyper hands bytes
//! to its connection in order, so the bytes spliced take exactly the fillers' place.
//!
//! Must never: send a filler's own bytes to a person (a filler slice is written only by
//! splicing, and with a splice under way a write that is not vectored, the way hyper would
//! have copied fillers into its own buffer, fails the connection instead); move more bytes
//! from a system's socket than its answer's length; keep a system's socket or a pipe after
//! its answer was relayed, or after the person's connection ended.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use rustix::fd::OwnedFd;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

/// Answers shorter than this are copied as usual: a pipe and its system calls cost more than
/// copying a small body.
pub const MIN_BODY: u64 = 128 * 1024;
/// Bytes in one filler frame.
const FILL: usize = 256 * 1024;
static FILLER: [u8; FILL] = [0; FILL];
/// The pipe's size asked for (the kernel's default is 64 KiB).
const PIPE: usize = 256 * 1024;
/// Rounds of moving bytes in one write before the task yields.
const ROUNDS: usize = 4;

fn is_filler(b: &[u8]) -> bool {
    let start = FILLER.as_ptr() as usize;
    let p = b.as_ptr() as usize;
    !b.is_empty() && p >= start && p + b.len() <= start + FILL
}

/// A connection's splice, ready: `arm` starts it.
pub struct Reserved<'s> {
    slot: &'s Slot,
    pipe_read: OwnedFd,
    pipe_write: OwnedFd,
}

impl Reserved<'_> {
    /// Take the rest of an answer's body, `left` bytes, from `from`: the body to hand hyper,
    /// `read` first, then fillers. `None` if another splice began meanwhile (HTTP/1.1
    /// answers one request at a time, so it cannot).
    pub fn arm(
        self,
        read: Bytes,
        from: TcpStream,
        left: u64,
        done: Option<Done>,
    ) -> Option<Spliced> {
        let mut job = self.slot.job.lock().ok()?;
        if job.is_some() {
            return None;
        }
        if left > 0 {
            *job = Some(Job {
                from,
                left,
                pipe_read: self.pipe_read,
                pipe_write: self.pipe_write,
                in_pipe: 0,
                done,
            });
        } else if let Some(done) = done {
            done(from);
        }
        Some(Spliced {
            read: (!read.is_empty()).then_some(read),
            fill: left,
        })
    }
}

/// One system answer being spliced into a person's connection.
struct Job {
    from: TcpStream,
    /// Bytes of the body still in the system's socket.
    left: u64,
    pipe_read: OwnedFd,
    pipe_write: OwnedFd,
    /// Bytes in the pipe, not yet in the person's socket.
    in_pipe: usize,
    /// Given the system's socket once the whole answer went through.
    done: Option<Done>,
}

/// What becomes of a system's socket whose answer was spliced to its end (kept alive).
pub type Done = Box<dyn FnOnce(TcpStream) + Send>;

/// A person's connection: the splice under way on it, if any. HTTP/1.1 answers one request
/// at a time, so a connection has at most one.
#[derive(Default)]
pub struct Slot {
    job: Mutex<Option<Job>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Slot {
    /// Ready a splice on this connection: its pipe. `None` when a splice is under way
    /// already or no pipe could be had (out of descriptors); the caller then relays as usual.
    pub fn reserve(&self) -> Option<Reserved<'_>> {
        if self.armed() {
            return None;
        }
        let (pipe_read, pipe_write) =
            rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
        let _ = rustix::pipe::fcntl_setpipe_size(&pipe_write, PIPE);
        Some(Reserved {
            slot: self,
            pipe_read,
            pipe_write,
        })
    }

    /// Whether a splice is under way.
    fn armed(&self) -> bool {
        self.job.lock().map(|j| j.is_some()).unwrap_or(true)
    }

    /// Write `bufs` to `to`: the slices before the first filler as usual, a filler by
    /// splicing.
    pub fn poll_write_vectored(
        &self,
        to: &mut TcpStream,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match bufs.iter().position(|b| is_filler(b)) {
            None => Pin::new(to).poll_write_vectored(cx, bufs),
            Some(0) => self.poll_splice(to, cx, bufs[0].len()),
            Some(i) => Pin::new(to).poll_write_vectored(cx, &bufs[..i]),
        }
    }

    /// Write `buf` to `to`. hyper writes this way only when it copies bodies into its own
    /// buffer, fillers included: never while a splice is under way.
    pub fn poll_write(
        &self,
        to: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if is_filler(buf) || self.armed() {
            return Poll::Ready(Err(io::Error::other(
                "a spliced answer must be written with vectored writes",
            )));
        }
        Pin::new(to).poll_write(cx, buf)
    }

    /// Move up to `want` bytes of the answer under way from its system into `to`.
    fn poll_splice(
        &self,
        to: &TcpStream,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        let Ok(mut guard) = self.job.lock() else {
            return Poll::Ready(Err(io::Error::other("splice state poisoned")));
        };
        let Some(job) = guard.as_mut() else {
            return Poll::Ready(Err(io::Error::other("filler with no splice under way")));
        };
        let r = job.poll_move(to, cx, want);
        if matches!(r, Poll::Ready(Err(_))) {
            // Failed: the system's socket and the pipe close here.
            *guard = None;
        } else if job.left == 0
            && job.in_pipe == 0
            && let Some(job) = guard.take()
            && let Some(done) = job.done
        {
            // The whole answer went through: the pipe closes, the socket is handed on.
            done(job.from);
        }
        r
    }
}

impl Job {
    fn poll_move(
        &mut self,
        to: &TcpStream,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<io::Result<usize>> {
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        for _ in 0..ROUNDS {
            if self.in_pipe > 0 {
                let n = want.min(self.in_pipe);
                match to.try_io(Interest::WRITABLE, || {
                    Ok(rustix::pipe::splice(
                        &self.pipe_read,
                        None,
                        to,
                        None,
                        n,
                        flags,
                    )?)
                }) {
                    Ok(moved) => {
                        self.in_pipe -= moved;
                        return Poll::Ready(Ok(moved));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(to.poll_write_ready(cx))?;
                        continue;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if self.left == 0 {
                return Poll::Ready(Err(io::Error::other("filler past the answer's end")));
            }
            // The pipe is empty here, so only the system's socket can make this wait.
            let n = usize::try_from(self.left).unwrap_or(usize::MAX).min(PIPE);
            let from = &self.from;
            match from.try_io(Interest::READABLE, || {
                Ok(rustix::pipe::splice(
                    from,
                    None,
                    &self.pipe_write,
                    None,
                    n,
                    flags,
                )?)
            }) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the system closed before the end of its answer",
                    )));
                }
                Ok(got) => {
                    self.in_pipe += got;
                    self.left -= got as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(from.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The body hyper is given for a spliced answer: what was read already, then fillers.
pub struct Spliced {
    read: Option<Bytes>,
    fill: u64,
}

impl HttpBody for Spliced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(read) = this.read.take() {
            return Poll::Ready(Some(Ok(Frame::data(read))));
        }
        if this.fill == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(this.fill).unwrap_or(FILL).min(FILL);
        this.fill -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILLER[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_none() && self.fill == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.fill + self.read.as_ref().map_or(0, |r| r.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A connected loopback pair.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// Fillers become the system's bytes, in order, exactly the answer's length: nothing of
    /// the filler reaches the person, and nothing past the answer is taken from the system.
    #[tokio::test]
    async fn fillers_carry_the_systems_bytes_and_nothing_else() {
        let (mut system, from) = pair().await;
        let (mut to, mut person) = pair().await;
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let (head, rest) = body.split_at(1000);
        let rest = rest.to_vec();
        let writer = tokio::spawn(async move {
            system.write_all(&rest).await.unwrap();
            // The next answer's first bytes: not this body's.
            system.write_all(b"NEXT").await.unwrap();
            system
        });
        let slot = Slot::default();
        let (handed, back) = std::sync::mpsc::channel();
        let mut spliced = slot
            .reserve()
            .unwrap()
            .arm(
                Bytes::copy_from_slice(head),
                from,
                (body.len() - head.len()) as u64,
                Some(Box::new(move |s| {
                    let _ = handed.send(s);
                })),
            )
            .unwrap();
        assert_eq!(spliced.size_hint().exact(), Some(body.len() as u64));
        let reader = tokio::spawn(async move {
            let mut got = vec![0; body.len()];
            person.read_exact(&mut got).await.unwrap();
            // Nothing more: the next answer's bytes stayed with the system's socket.
            let mut more = [0u8; 8];
            let after = tokio::time::timeout(
                std::time::Duration::from_millis(100),
                person.read(&mut more),
            )
            .await;
            assert!(after.is_err(), "bytes past the answer reached the person");
            (got, body)
        });
        let mut frames = vec![];
        while let Some(f) = std::future::poll_fn(|cx| Pin::new(&mut spliced).poll_frame(cx)).await {
            frames.push(f.unwrap().into_data().unwrap());
        }
        for f in &frames {
            let mut off = 0;
            while off < f.len() {
                let slice = [io::IoSlice::new(&f[off..])];
                off += std::future::poll_fn(|cx| slot.poll_write_vectored(&mut to, cx, &slice))
                    .await
                    .unwrap();
            }
        }
        assert!(!slot.armed(), "the splice ends with its answer");
        let (got, body) = reader.await.unwrap();
        assert!(
            got == body,
            "the person got other bytes than the system sent"
        );
        let _system = writer.await.unwrap();
        // The system's socket, handed on at the end, starts at the next answer.
        let mut from = back.try_recv().expect("the socket handed on");
        let mut next = [0u8; 4];
        from.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"NEXT");
        // A filler with nothing under way, and a plain write while one is, are refused.
        let filler = [io::IoSlice::new(&FILLER[..10])];
        assert!(
            std::future::poll_fn(|cx| slot.poll_write_vectored(&mut to, cx, &filler))
                .await
                .is_err()
        );
        let (_system2, from2) = pair().await;
        let _armed = slot
            .reserve()
            .unwrap()
            .arm(Bytes::new(), from2, 10, None)
            .unwrap();
        assert!(slot.reserve().is_none(), "one splice at a time");
        assert!(
            std::future::poll_fn(|cx| slot.poll_write(&mut to, cx, b"copied"))
                .await
                .is_err()
        );
    }

    /// A system that closes before the end of its answer fails the person's connection
    /// (the answer cannot be completed), and the splice is over.
    #[tokio::test]
    async fn a_system_closing_early_fails_the_write() {
        let (mut system, from) = pair().await;
        let (mut to, _person) = pair().await;
        system.write_all(&[7; 100]).await.unwrap();
        drop(system);
        let slot = Slot::default();
        let _body = slot
            .reserve()
            .unwrap()
            .arm(Bytes::new(), from, 200_000, None)
            .unwrap();
        let filler = [io::IoSlice::new(&FILLER[..FILL])];
        let mut moved = 0;
        let err = loop {
            match std::future::poll_fn(|cx| slot.poll_write_vectored(&mut to, cx, &filler)).await {
                Ok(n) => moved += n,
                Err(e) => break e,
            }
        };
        assert_eq!(moved, 100);
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!slot.armed());
    }
}
