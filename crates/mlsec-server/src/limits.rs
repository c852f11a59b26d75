//! Limits: a request rate with burst (GCRA), requests in flight, and token quotas per minute and
//! per day. Two backends with the same semantics: in memory (one replica, the default) and Redis
//! (every replica shares the state; each decision is one Lua script, so it is atomic, and the
//! clock is the Redis server's, so replicas with skewed clocks agree).
//!
//! Tokens are reserved before the call (prompt estimate plus max_tokens) and settled from the
//! upstream's usage afterwards, in the windows the reservation was made in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

/// Entries kept by the memory backend before expired ones are swept.
pub const MEMORY_SWEEP_AT: usize = 100_000;
/// How long a Redis concurrency slot outlives a gateway that died holding it.
pub const CONCURRENCY_LEASE: Duration = Duration::from_mins(10);
/// Time allowed for one Redis round trip before the backend counts as down.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A limit that refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rate,
    Concurrency,
    TokensPerMinute,
    TokensPerDay,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Rate => "rate",
            Limit::Concurrency => "concurrency",
            Limit::TokensPerMinute => "tokens_per_minute",
            Limit::TokensPerDay => "tokens_per_day",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; retry after this many seconds (at least 1).
    Deny(Limit, u64),
}

#[derive(Debug, thiserror::Error)]
#[error("limit store unavailable: {0}")]
pub struct BackendError(pub String);

/// GCRA parameters: one request per `interval`, up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub interval_us: u64,
    pub burst: u32,
}

impl Rate {
    pub fn per_second(rps: f64, burst: u32) -> Rate {
        Rate {
            interval_us: ((1_000_000.0 / rps).ceil() as u64).max(1),
            burst: burst.max(1),
        }
    }
    /// How far the theoretical arrival time may run ahead of now.
    fn tolerance_us(self) -> u64 {
        self.interval_us * u64::from(self.burst - 1)
    }
}

/// One fixed quota window: its key, its limit, the seconds left in it and how long its count
/// is kept.
#[derive(Debug, Clone)]
pub struct Window {
    pub key: String,
    pub limit: u64,
    pub left_secs: u64,
    pub ttl_secs: u64,
}

/// Tokens reserved for one request, to be settled later.
#[derive(Debug, Clone, Default)]
pub struct Reservation {
    pub tokens: u64,
    minute_key: Option<String>,
    day_key: Option<String>,
}

pub enum Backend {
    Memory(Memory),
    Redis(RedisBackend),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Whether the store answers (always, in memory; a `PING` within the timeout, in Redis).
    pub async fn ping(&self) -> Result<(), BackendError> {
        match self {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(r) => r.ping().await,
        }
    }

    /// One request against a GCRA rate.
    pub async fn rate(&self, key: &str, rate: Rate) -> Result<Decision, BackendError> {
        match self {
            Backend::Memory(m) => Ok(m.rate(key, rate)),
            Backend::Redis(r) => r.rate(key, rate).await,
        }
    }

    /// Takes a slot; `Ok(Some(slot))` must be released through [`Backend::release`].
    pub async fn acquire(
        &self,
        key: &str,
        limit: u32,
        request_id: &str,
    ) -> Result<Option<Slot>, BackendError> {
        match self {
            Backend::Memory(m) => Ok(m.acquire(key, limit).then(|| Slot {
                key: key.to_string(),
                member: request_id.to_string(),
            })),
            Backend::Redis(r) => r.acquire(key, limit, request_id).await,
        }
    }

    pub async fn release(&self, slot: &Slot) {
        match self {
            Backend::Memory(m) => m.release(&slot.key),
            Backend::Redis(r) => r.release(slot).await,
        }
    }

    /// Reserves `tokens` against the per-minute and per-day quotas (either may be absent).
    pub async fn reserve(
        &self,
        key: &str,
        tokens: u64,
        per_minute: Option<u64>,
        per_day: Option<u64>,
    ) -> Result<Result<Reservation, Decision>, BackendError> {
        let now = unix_secs();
        let minute = per_minute.map(|limit| Window {
            key: format!("{key}:m:{}", now / 60),
            limit,
            left_secs: 60 - now % 60,
            ttl_secs: 120,
        });
        let day = per_day.map(|limit| Window {
            key: format!("{key}:d:{}", now / 86_400),
            limit,
            left_secs: 86_400 - now % 86_400,
            ttl_secs: 172_800,
        });
        match self {
            Backend::Memory(m) => Ok(m.reserve(tokens, minute, day)),
            Backend::Redis(r) => r.reserve(tokens, minute, day).await,
        }
    }

    /// Replaces a reservation by what was used.
    pub async fn settle(&self, r: &Reservation, used: u64) -> Result<(), BackendError> {
        let delta = used as i64 - r.tokens as i64;
        if delta == 0 {
            return Ok(());
        }
        match self {
            Backend::Memory(m) => {
                m.settle(r, delta);
                Ok(())
            }
            Backend::Redis(rb) => rb.settle(r, delta).await,
        }
    }
}

/// A held concurrency slot.
#[derive(Debug, Clone)]
pub struct Slot {
    key: String,
    member: String,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The embedded backend: one mutex-guarded map per kind of state.
pub struct Memory {
    start: Instant,
    tat: Mutex<HashMap<String, u64>>,
    inflight: Mutex<HashMap<String, u32>>,
    /// Window key -> (tokens used, unix second the window ends).
    tokens: Mutex<HashMap<String, (u64, u64)>>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            start: Instant::now(),
            tat: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }
}

impl Memory {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn rate(&self, key: &str, rate: Rate) -> Decision {
        let Ok(mut map) = self.tat.lock() else {
            return Decision::Allow;
        };
        // The clock is read under the lock: read before it, a thread that waited for the lock
        // would judge its request at an earlier instant than the one before it and could be
        // refused although the rate was never exceeded.
        let now = self.now_us();
        if map.len() >= MEMORY_SWEEP_AT {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > rate.tolerance_us() {
            let wait = ahead - rate.tolerance_us();
            return Decision::Deny(Limit::Rate, wait.div_ceil(1_000_000).max(1));
        }
        match map.get_mut(key) {
            Some(t) => *t = tat + rate.interval_us,
            None => {
                map.insert(key.to_string(), tat + rate.interval_us);
            }
        }
        Decision::Allow
    }

    fn acquire(&self, key: &str, limit: u32) -> bool {
        let Ok(mut map) = self.inflight.lock() else {
            return false;
        };
        if let Some(n) = map.get_mut(key) {
            if *n >= limit {
                return false;
            }
            *n += 1;
            return true;
        }
        if limit == 0 {
            return false;
        }
        map.insert(key.to_string(), 1);
        true
    }

    fn release(&self, key: &str) {
        if let Ok(mut map) = self.inflight.lock()
            && let Some(n) = map.get_mut(key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(key);
            }
        }
    }

    fn reserve(
        &self,
        tokens: u64,
        minute: Option<Window>,
        day: Option<Window>,
    ) -> Result<Reservation, Decision> {
        let now = unix_secs();
        let Ok(mut map) = self.tokens.lock() else {
            return Err(Decision::Deny(Limit::TokensPerMinute, 1));
        };
        if map.len() >= MEMORY_SWEEP_AT {
            map.retain(|_, (_, end)| *end > now);
        }
        for (w, limit) in [
            (&minute, Limit::TokensPerMinute),
            (&day, Limit::TokensPerDay),
        ] {
            if let Some(w) = w {
                let used = map.get(&w.key).map_or(0, |e| e.0);
                if used.saturating_add(tokens) > w.limit {
                    return Err(Decision::Deny(limit, w.left_secs.max(1)));
                }
            }
        }
        for w in minute.iter().chain(day.iter()) {
            let e = map.entry(w.key.clone()).or_insert((0, now + w.left_secs));
            e.0 = e.0.saturating_add(tokens);
        }
        Ok(Reservation {
            tokens,
            minute_key: minute.map(|m| m.key),
            day_key: day.map(|d| d.key),
        })
    }

    fn settle(&self, r: &Reservation, delta: i64) {
        if let Ok(mut map) = self.tokens.lock() {
            for k in r.minute_key.iter().chain(r.day_key.iter()) {
                if let Some(e) = map.get_mut(k) {
                    e.0 = e.0.saturating_add_signed(delta);
                }
            }
        }
    }
}

const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, tat - now - tolerance}
end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
return {1, 0}
";

const ACQUIRE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
return 1
";

/// KEYS: minute window, day window (either may be the empty-string placeholder `-`).
/// ARGV: tokens, minute limit, day limit, minute ttl, day ttl, minute left, day left.
const RESERVE_LUA: &str = r"
local n = tonumber(ARGV[1])
if KEYS[1] ~= '-' then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  if used + n > tonumber(ARGV[2]) then return {0, 1, tonumber(ARGV[6])} end
end
if KEYS[2] ~= '-' then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + n > tonumber(ARGV[3]) then return {0, 2, tonumber(ARGV[7])} end
end
if KEYS[1] ~= '-' then
  redis.call('INCRBY', KEYS[1], n)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
if KEYS[2] ~= '-' then
  redis.call('INCRBY', KEYS[2], n)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
return {1, 0, 0}
";

/// Shared state in Redis.
pub struct RedisBackend {
    conn: ConnectionManager,
    prefix: String,
    gcra: redis::Script,
    acquire: redis::Script,
    reserve: redis::Script,
}

impl RedisBackend {
    /// Connects (failing fast: the caller decides whether a down store stops the start).
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisBackend, BackendError> {
        let client = redis::Client::open(url).map_err(|e| BackendError(e.to_string()))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT * 4,
            ConnectionManager::new_with_config(client, cfg),
        )
        .await
        .map_err(|_| BackendError(format!("{url}: connection timed out")))?
        .map_err(|e| BackendError(e.to_string()))?;
        Ok(RedisBackend {
            conn,
            prefix: prefix.to_string(),
            gcra: redis::Script::new(GCRA_LUA),
            acquire: redis::Script::new(ACQUIRE_LUA),
            reserve: redis::Script::new(RESERVE_LUA),
        })
    }

    fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A connection for other shared state (abuse windows), and the key prefix to use.
    pub fn connection(&self) -> (ConnectionManager, &str) {
        (self.conn.clone(), &self.prefix)
    }

    async fn rate(&self, key: &str, rate: Rate) -> Result<Decision, BackendError> {
        let mut c = self.conn.clone();
        let (ok, wait): (i64, i64) = timed(
            self.gcra
                .key(self.k(&format!("rate:{key}")))
                .arg(rate.interval_us)
                .arg(rate.tolerance_us())
                .invoke_async(&mut c),
        )
        .await?;
        Ok(if ok == 1 {
            Decision::Allow
        } else {
            Decision::Deny(Limit::Rate, (wait.max(0) as u64).div_ceil(1_000_000).max(1))
        })
    }

    async fn acquire(
        &self,
        key: &str,
        limit: u32,
        member: &str,
    ) -> Result<Option<Slot>, BackendError> {
        let mut c = self.conn.clone();
        let k = self.k(&format!("conc:{key}"));
        let ok: i64 = timed(
            self.acquire
                .key(&k)
                .arg(limit)
                .arg(member)
                .arg(CONCURRENCY_LEASE.as_millis() as u64)
                .invoke_async(&mut c),
        )
        .await?;
        Ok((ok == 1).then(|| Slot {
            key: k,
            member: member.to_string(),
        }))
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let mut c = self.conn.clone();
        timed(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .map(|_| ())
    }

    async fn release(&self, slot: &Slot) {
        let mut c = self.conn.clone();
        let r: Result<i64, _> = timed(
            redis::cmd("ZREM")
                .arg(&slot.key)
                .arg(&slot.member)
                .query_async(&mut c),
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not release a concurrency slot; its lease will expire");
        }
    }

    async fn reserve(
        &self,
        tokens: u64,
        minute: Option<Window>,
        day: Option<Window>,
    ) -> Result<Result<Reservation, Decision>, BackendError> {
        let mut c = self.conn.clone();
        let key = |w: &Option<Window>| {
            w.as_ref()
                .map_or("-".to_string(), |w| self.k(&format!("tok:{}", w.key)))
        };
        let field = |w: &Option<Window>, f: fn(&Window) -> u64| w.as_ref().map_or(0, f);
        let (mk, dk) = (key(&minute), key(&day));
        let (ok, which, left): (i64, i64, i64) = timed(
            self.reserve
                .key(&mk)
                .key(&dk)
                .arg(tokens)
                .arg(field(&minute, |w| w.limit))
                .arg(field(&day, |w| w.limit))
                .arg(field(&minute, |w| w.ttl_secs))
                .arg(field(&day, |w| w.ttl_secs))
                .arg(field(&minute, |w| w.left_secs))
                .arg(field(&day, |w| w.left_secs))
                .invoke_async(&mut c),
        )
        .await?;
        if ok == 1 {
            return Ok(Ok(Reservation {
                tokens,
                minute_key: minute.map(|_| mk),
                day_key: day.map(|_| dk),
            }));
        }
        let limit = if which == 1 {
            Limit::TokensPerMinute
        } else {
            Limit::TokensPerDay
        };
        Ok(Err(Decision::Deny(limit, left.max(1) as u64)))
    }

    async fn settle(&self, r: &Reservation, delta: i64) -> Result<(), BackendError> {
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for k in r.minute_key.iter().chain(r.day_key.iter()) {
            pipe.cmd("INCRBY").arg(k).arg(delta).ignore();
        }
        timed(pipe.query_async::<()>(&mut c)).await
    }
}

/// A Redis call within the store's timeout.
pub async fn timed<T>(f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, BackendError> {
    match tokio::time::timeout(REDIS_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BackendError(e.to_string())),
        Err(_) => Err(BackendError("timed out".into())),
    }
}

/// Shared handle.
pub type SharedBackend = Arc<Backend>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_far_above_the_load_never_refuses_under_contention() {
        // 1,000,000 requests per second with a burst of 100, and 4 threads each sending one
        // request every 10 µs at most (400,000 per second in all): a thread that waited for the
        // lock must not be judged at the instant before it waited.
        let m = Arc::new(Memory::default());
        let rate = Rate::per_second(1_000_000.0, 100);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let mut denied = 0;
                    for _ in 0..20_000 {
                        let t = Instant::now();
                        if m.rate("k", rate) != Decision::Allow {
                            denied += 1;
                        }
                        while t.elapsed() < Duration::from_micros(10) {
                            std::hint::spin_loop();
                        }
                    }
                    denied
                })
            })
            .collect();
        let denied: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(denied, 0, "spurious 429s");
    }

    #[test]
    fn gcra_allows_the_burst_then_refuses_with_a_wait() {
        let m = Memory::default();
        let rate = Rate::per_second(1.0, 3);
        for _ in 0..3 {
            assert_eq!(m.rate("k", rate), Decision::Allow);
        }
        assert_eq!(m.rate("k", rate), Decision::Deny(Limit::Rate, 1));
        assert_eq!(m.rate("other", rate), Decision::Allow);
    }

    #[test]
    fn concurrency_counts_and_releases() {
        let m = Memory::default();
        assert!(m.acquire("k", 2));
        assert!(m.acquire("k", 2));
        assert!(!m.acquire("k", 2));
        m.release("k");
        assert!(m.acquire("k", 2));
    }

    #[test]
    fn tokens_reserve_settle_and_refuse() {
        let m = Memory::default();
        let w = || {
            Some(Window {
                key: "k:m:1".into(),
                limit: 100,
                left_secs: 30,
                ttl_secs: 120,
            })
        };
        let r = m.reserve(80, w(), None).expect("fits");
        assert!(matches!(
            m.reserve(30, w(), None),
            Err(Decision::Deny(Limit::TokensPerMinute, 30))
        ));
        m.settle(&r, -60); // only 20 were used
        assert!(m.reserve(30, w(), None).is_ok());
    }
}
