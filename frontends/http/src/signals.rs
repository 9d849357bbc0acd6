//! The node's process signals: SIGINT and SIGTERM stop it cleanly, SIGHUP reloads what can be
//! reloaded (the TLS certificate) without dropping a connection.

/// Calls `stop` on SIGINT or SIGTERM and `reload` on each SIGHUP, from a thread of its own.
/// Call once, before the node starts serving.
#[cfg(unix)]
pub fn on_signals(
    stop: impl Fn() + Send + 'static,
    reload: impl Fn() + Send + 'static,
) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => reload(),
                    _ => stop(),
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// Elsewhere Ctrl-C stops the node and nothing reloads.
#[cfg(not(unix))]
pub fn on_signals(
    stop: impl Fn() + Send + 'static,
    _reload: impl Fn() + Send + 'static,
) -> Result<(), String> {
    ctrlc::set_handler(stop).map_err(|e| format!("cannot install the signal handler: {e}"))
}
