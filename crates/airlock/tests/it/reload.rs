//! Reloading roles and grants (what SIGHUP does): a new grant takes effect
//! without a restart; a broken file is refused and the old policy stays.

use crate::harness::{Grant, Harness, Stack, TempDir};
use crate::support::Db;

async fn sync_status(stack: &Stack, client: &str) -> u16 {
    stack
        .http
        .post(stack.url("/v1/connections/postgres-snowflake/sync"))
        .bearer_auth(stack.token(client))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_grant_takes_effect_and_a_broken_file_changes_nothing() {
    let stack = Harness::new(Db::Sqlite).start().await;
    assert_eq!(sync_status(&stack, "reader").await, 403);

    let dir = TempDir::new("airlock-reload");
    let path = dir.path.join("airlock.toml");
    let added = stack.config.clone().with_grant(
        Grant::matching("runner", "client_id", "reader").connections(&["postgres-snowflake"]),
    );
    added.write(&path);
    let grants = airlock::app::reload_policy(&stack.state, &path, &[])
        .await
        .expect("reload");
    assert_eq!(
        grants,
        crate::harness::ROLES.len() + 1,
        "one per role, and the new one"
    );
    assert_eq!(
        sync_status(&stack, "reader").await,
        202,
        "the new grant is in force"
    );

    let broken = stack
        .config
        .clone()
        .with_grant(Grant::matching("no-such-role", "sub", "x"));
    broken.write(&path);
    let error = airlock::app::reload_policy(&stack.state, &path, &[])
        .await
        .expect_err("refused");
    let broken_key = format!("grants[{}].role", crate::harness::ROLES.len());
    assert!(format!("{error:#}").contains(&broken_key), "{error:#}");
    std::fs::write(&path, "this is not toml [").expect("write");
    assert!(
        airlock::app::reload_policy(&stack.state, &path, &[])
            .await
            .is_err()
    );
    assert_eq!(
        sync_status(&stack, "reader").await,
        202,
        "the previous policy stays"
    );
    assert_eq!(
        sync_status(&stack, "auditor").await,
        403,
        "and still denies the rest"
    );
    stack.stop().await;
}
