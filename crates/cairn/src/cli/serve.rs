//! `cairn edge serve` and `cairn hub serve`: the serve lock, the runtime and shutdown.

use super::*;

/// The file `cairn edge serve` holds an exclusive lock on while it runs:
/// commands that rewrite a stream under it (`cairn edge recover`) refuse to
/// run beside it, since its writer keeps stream heads in memory.
pub(super) const SERVE_LOCK: &str = "serve.lock";

/// Takes the serving lock of the store in `dir`, or says who holds it.
pub(super) fn serve_lock(dir: &std::path::Path) -> Result<std::fs::File, Failure> {
    write::try_serve_lock(dir)?.ok_or_else(|| {
        Failure::invalid(
            None,
            &[Violation::new(
                "data",
                "not_serving",
                format!(
                    "`cairn edge serve` is running on {}: it writes this store and syncs it in the background (`cairn status` shows how it goes); stop it first",
                    dir.display()
                ),
            )],
        )
    })
}

pub(super) fn serve(
    cli: &Cli,
    listen: &str,
    limits: cairn_http::server::ServeLimits,
    sync: Option<cairn_sync::SyncSettings>,
) -> Result<(), Failure> {
    crate::init_tracing();
    let store = std::sync::Arc::new(open(cli)?);
    // Held until the process ends.
    let _serving = serve_lock(&cli.data)?;
    server_runtime()?.block_on(async move {
        let (listener, address) = announce(
            listen,
            &format!("edge {}", store.settings().node),
            "http",
            |url| {
                // Before the URL is printed: whoever waits for it may write.
                write::announce(&cli.data, url).map(drop)
            },
        )
        .await?;
        tracing::info!(node = %store.settings().node, %address, "edge API started");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let syncing =
            sync.map(|settings| tokio::spawn(cairn_sync::run(store.clone(), settings, stopped)));
        cairn_http::edge::run(listener, store, limits, shutdown_signal())
            .await
            .context("server failed")?;
        let _ = stop.send(true);
        if let Some(syncing) = syncing {
            let _ = syncing.await;
        }
        tracing::info!("edge API stopped");
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// The runtime of a long-running server.
pub(super) fn server_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?)
}

/// Binds `listen` and prints `cairn WHO listening on http://ADDRESS` as the
/// first line of stdout (tests and the demo read the URL from it).
/// Binds `listen`, runs `ready` with the URL (before anyone is told), then
/// prints the URL as the first line on stdout.
pub(super) async fn announce(
    listen: &str,
    who: &str,
    scheme: &str,
    ready: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().context("no local address")?;
    ready(&format!("{scheme}://{address}"))?;
    println!("cairn {who} listening on {scheme}://{address}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok((listener, address))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
