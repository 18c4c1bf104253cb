//! The shard's listener. Every shard binds the same address with SO_REUSEPORT
//! (glommio sets it), so the kernel balances new connections across shards and
//! no shard hands sockets to another.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use futures::FutureExt;
use glommio::net::TcpListener;

use crate::handlers::Ctx;
use crate::shard::notify::Notify;

/// Binds this shard's listener on `addr` (a concrete port).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).map_err(std::io::Error::from)
}

/// Accepts until the broker stops, then waits for open connections to finish.
pub async fn serve(ctx: Rc<Ctx>, listener: TcpListener) {
    let open = Rc::new(Cell::new(0usize));
    let closed = Rc::new(Notify::default());
    loop {
        let stop = ctx.shard().stop_signal.wait();
        if ctx.shard().stopping.get() {
            break;
        }
        let accepted = futures::select! {
            s = listener.accept().fuse() => s,
            _ = stop.fuse() => break,
        };
        match accepted {
            Ok(stream) => {
                open.set(open.get() + 1);
                let (ctx, open, closed) = (ctx.clone(), open.clone(), closed.clone());
                glommio::spawn_local(async move {
                    super::connection::serve(ctx, stream).await;
                    open.set(open.get() - 1);
                    closed.notify_all();
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    while open.get() > 0 {
        closed.wait().await;
    }
}
