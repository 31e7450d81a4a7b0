//! The `convene` binary: parses the command line and runs `app`.

use clap::Parser;

/// See `no_transparent_huge_pages` for why, and ARCHITECTURE.md for the measurements.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
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
    match convene::app::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("error: {e}\n").as_bytes(),
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// mimalloc keeps memory in per-thread heaps, so tasks that move between the runtime's
/// workers never contend for an allocator lock (glibc's arena locks were a tenth of the CPU of
/// the mixed workload). It also asks the kernel for transparent huge pages, and on a kernel set
/// to `madvise` it gets them: memory is then taken and kept in 2 MiB steps, which put the peak
/// RSS at 10,000 events at 95 MiB. Without huge pages the peak is about 60 MiB (glibc: 50 MiB)
/// and the CPU saving stays. The setting covers the whole process, including mappings made
/// before `main`, and is only a hint to the kernel: an error is ignored.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and changes no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
