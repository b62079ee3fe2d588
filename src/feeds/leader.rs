//! One poller per cursor across replicas: a lease in the shared Redis (`SET NX PX`, renewed by
//! its holder with a compare-and-extend script), so replicas with the same `--feeds` settings
//! poll each DomainTools cursor from exactly one of them while all serve the shared directory.

use std::time::Duration;

use domaintools::{ExposeSecret, ExtraRoots, SecretString};
use redis::aio::ConnectionManager;

/// Extends the lease only for its holder, atomically.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Leases on feed cursors, held by this process under a random id.
#[derive(Clone)]
pub struct Leases {
    connection: ConnectionManager,
    holder: String,
    lease: Duration,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Leases {
    /// Connects to the Redis at `url` (`rediss://` trusting `roots` too, like every other TLS
    /// peer); leases last `lease` unless renewed.
    pub async fn connect(
        url: &SecretString,
        roots: &ExtraRoots,
        lease: Duration,
    ) -> anyhow::Result<Self> {
        let client = roots
            .redis_client(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("--feeds-lock-url is not a redis:// or rediss:// URL"))?;
        // Few retries: a refusal (a certificate, a password) is reported as itself, not as
        // a Redis that never answered.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the feeds lock Redis did not answer within 10 s"))?
        // Redis' errors name neither the URL nor the password.
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot reach the feeds lock Redis: {}",
                crate::telemetry::logged(&error)
            )
        })?;
        let holder = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
        Ok(Self {
            connection,
            holder,
            lease,
        })
    }

    /// Whether this process holds (now or newly) the lease on `cursor`. Redis errors count as
    /// not holding it: two pollers on one cursor would each lose lines.
    pub async fn hold(&self, cursor: &str) -> bool {
        let key = format!("misp-domaintools:feeds:leader:{cursor}");
        let millis = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let mut connection = self.connection.clone();
        let renewed: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(&key)
            .arg(&self.holder)
            .arg(millis)
            .query_async(&mut connection)
            .await;
        if renewed.as_ref().is_ok_and(|done| *done == 1) {
            return true;
        }
        let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&key)
            .arg(&self.holder)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut connection)
            .await;
        matches!(taken, Ok(Some(_)))
    }
}
