//! The scripted, knowingly vulnerable chat model of the probe tests, as a program:
//! `cargo run -p mlsec-probe --example vulnerable_llm -- 8010` prints its API base; then
//! `mlsec redteam llm --url http://127.0.0.1:8010/v1 --model any`.

#[path = "../tests/it/server.rs"]
mod server;

#[tokio::main]
async fn main() {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    println!("{}", server::start(port).await);
    std::future::pending::<()>().await;
}
