//! `hookflow ui` holds connections as `hookflow serve` does (issue 24, item 12): a
//! connection that sends no request, or stays idle after one, is closed after its
//! timeout; past the connection cap a new one is refused with a 503 while the
//! process keeps answering; and out of file descriptors its accept loop waits
//! instead of spinning a core. Before, idle connections stayed open for ever and
//! at the descriptor limit the process took a whole core.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hookflow_tests::{Killed, Server, hookflow_bin};

/// A running `hookflow ui` over a fresh data directory.
struct Ui {
    process: Killed,
    addr: String,
    _data: Server,
}

impl Ui {
    /// Starts `hookflow ui ARGS` on a free port, under `sh -c 'ulimit -n N; exec ...'`
    /// when `open_files` is given.
    fn start(args: &[&str], open_files: Option<u32>) -> Self {
        // A hookflow serve writes the data directory the viewer reads.
        let data = Server::start(&[]);
        let mut command = vec![
            hookflow_bin().to_str().unwrap().to_string(),
            "ui".into(),
            "--data".into(),
            data.data_dir().to_str().unwrap().to_string(),
            "--addr".into(),
            "127.0.0.1:0".into(),
        ];
        command.extend(args.iter().map(|a| a.to_string()));
        let quoted: Vec<String> = command.iter().map(|a| format!("'{a}'")).collect();
        let limit = open_files.map_or(String::new(), |n| format!("ulimit -n {n}; "));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{limit}exec {}", quoted.join(" ")))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hookflow ui");
        let mut banner = Vec::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            banner.push(byte[0]);
        }
        let banner = String::from_utf8_lossy(&banner).to_string();
        let addr = banner
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .to_string();
        Self {
            process: Killed(child),
            addr,
            _data: data,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).expect("connect to hookflow ui");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// The status of `GET /ui` on a new connection.
    fn status(&self) -> String {
        let mut stream = self.connect();
        let _ = write!(
            stream,
            "GET /ui HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.addr
        );
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        answer
            .split(' ')
            .nth(1)
            .filter(|_| answer.starts_with("HTTP/1.1 "))
            .unwrap_or("closed")
            .to_string()
    }

    /// Waits until `GET /ui` answers 200 again, at most `within`.
    fn answers_200_within(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status();
            if status == "200" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still {status} {within:?} after the connections closed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Seconds of CPU the process used (user and system), from /proc.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.0.id()))
            .expect("read /proc/<pid>/stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / clock_ticks()
    }
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// How long until the server closes `stream` (it sends nothing first), at most `within`.
fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn connections_without_a_request_or_idle_after_one_are_closed_after_their_timeouts() {
    let ui = Ui::start(&["--header-timeout", "1", "--idle-timeout", "2"], None);

    let mut silent = ui.connect();
    let closed = closed_after(&mut silent, Duration::from_secs(5));
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(900) && t < Duration::from_secs(3)),
        "a connection that sent nothing was closed after {closed:?} (header timeout 1 s)"
    );

    let mut kept = ui.connect();
    write!(kept, "GET /ui HTTP/1.1\r\nhost: {}\r\n\r\n", ui.addr).unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let closed = closed_after(&mut kept, Duration::from_secs(6));
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(1500) && t < Duration::from_secs(4)),
        "a kept-alive connection was closed {closed:?} after its answer (idle timeout 2 s)"
    );
}

#[test]
fn past_the_connection_cap_a_new_connection_is_refused_and_the_ui_answers_again_after() {
    let ui = Ui::start(&["--max-connections", "4", "--header-timeout", "30"], None);
    assert_eq!(ui.status(), "200");
    let held: Vec<TcpStream> = (0..4).map(|_| ui.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));

    // The refusal comes unasked (a request written after it could meet a closed
    // socket and reset the connection before the answer is read).
    let mut fifth = ui.connect();
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = fifth.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after: 1"),
        "a fifth connection past a cap of 4 (waited up to 5 s): {answer:?}"
    );

    drop(held);
    ui.answers_200_within(Duration::from_secs(3));
}

#[test]
fn out_of_file_descriptors_the_ui_does_not_spin_and_answers_again_once_connections_close() {
    let ui = Ui::start(&[], Some(64));
    assert_eq!(ui.status(), "200");
    // Far more connections than 64 descriptors hold; none sends a request. (A
    // server that stops accepting leaves later ones unanswered: stop there.)
    let addr: std::net::SocketAddr = ui.addr.parse().unwrap();
    let held: Vec<TcpStream> = (0..300)
        .map_while(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect();
    assert!(held.len() > 80, "only {} connections opened", held.len());
    std::thread::sleep(Duration::from_secs(1));

    let (before, started) = (ui.cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let share = (ui.cpu_seconds() - before) / started.elapsed().as_secs_f64();
    eprintln!(
        "hookflow ui at 64 open files with {} connections: {:.0}% of a core",
        held.len(),
        share * 100.0
    );
    assert!(
        share < 0.1,
        "hookflow ui took {:.0}% of a core while out of descriptors",
        share * 100.0
    );

    drop(held);
    ui.answers_200_within(Duration::from_secs(5));
}
