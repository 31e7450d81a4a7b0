//! The `convene` binary: parses the command line and runs `app`.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use clap::Parser;

/// See `no_transparent_huge_pages` for why, and ARCHITECTURE.md for the measurements.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    prompt_purge();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("error: cannot start the async runtime: {e}\n").as_bytes(),
            );
            return std::process::ExitCode::from(2);
        }
    };
    runtime.block_on(run())
}

async fn run() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONVENE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = convene::app::Cli::parse();
    let serving = matches!(cli.command, convene::app::Command::Serve(_));
    match convene::app::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A server's failure goes to its log too; a command's error is said once.
            if serving {
                tracing::error!("{e}");
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("error: {e}\n").as_bytes(),
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (the C enum's sixteenth member; `libmimalloc-sys` names
/// it only for mimalloc 2). Checked against its documented default by a test below.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds freed memory waits before it goes back to the kernel.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// mimalloc 3 keeps freed memory for a second before returning it, and under a steady load
/// that second of churn was about 10 MiB of the peak RSS at 10,000 events (66 MiB against
/// 57 MiB returned at once). A tenth of a second keeps most of that saving; returning memory
/// at once cost a third more CPU per request in madvise calls.
#[allow(unsafe_code)]
fn prompt_purge() {
    // SAFETY: mi_option_set takes plain integers and may be called at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// mimalloc keeps memory in per-thread heaps, so tasks that move between the runtime's
/// workers never contend for an allocator lock (glibc's arena locks were a tenth of the CPU of
/// the mixed workload). It also asks the kernel for transparent huge pages, and on a kernel set
/// to `madvise` it gets them: memory is then taken and kept in 2 MiB steps, which put the peak
/// RSS at 10,000 events at 95 MiB. Without huge pages the peak is about 60 MiB (glibc: 50 MiB)
/// and the CPU saving stays. The setting covers the whole process, including mappings made
/// before `main`, and is only a hint to the kernel: an error is ignored.
#[allow(unsafe_code)]
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and changes no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    /// Option 15 is the purge delay: it reads mimalloc 3's documented default (1,000 ms) until
    /// set, unless the environment overrides it.
    #[test]
    fn purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            let default = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(default, 1000);
        }
        super::prompt_purge();
        // SAFETY: as above.
        let set = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(set, super::PURGE_DELAY_MS);
    }
}
