//! The four-eyes commands of the `airlock` binary: `reset --wait` waits
//! through the approval and says so, `approvals` lists the inbox,
//! `approve` and `deny` decide, and the requester's own approval is refused
//! with exit 2.

use crate::cli::{airlock, slug_of, text};
use crate::harness::Harness;
use crate::support::{Db, reliable_connections};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_waits_through_its_approval_and_the_inbox_decides_it() {
    let stack = Harness::fast(Db::Sqlite).approving_resets().start().await;
    let id = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let slug = slug_of(&stack, &id).await;

    // The editor's reset waits (in the background) for someone else.
    let waiting = {
        let args = [
            "reset",
            slug.as_str(),
            "--wait",
            "--reason",
            "schema change",
        ];
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let stack_base = stack.base.clone();
        let token = stack.token("editor");
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
                .args(&args)
                .env("AIRLOCK_URL", stack_base)
                .env("AIRLOCK_TOKEN", token)
                .env("NO_COLOR", "1")
                .output()
                .expect("the binary runs")
        })
    };

    // The approver's inbox shows it, with its reason.
    let mut listed = String::new();
    for _ in 0..50 {
        let output = airlock(&stack, Some("approver"), &["approvals"]).await;
        assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
        listed = text(&output).0;
        if listed.contains("schema change") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        listed.contains("reset") && listed.contains("editor"),
        "{listed}"
    );
    let approval = listed
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .expect("a request row")
        .to_owned();

    // The requester cannot approve it: exit 2, and says why.
    let own = airlock(&stack, Some("editor"), &["approve", &approval]).await;
    assert_eq!(own.status.code(), Some(2), "{:?}", text(&own));
    assert!(text(&own).1.contains("four_eyes"), "{:?}", text(&own));
    // A denial needs a reason (the command line says so before asking).
    let bare = airlock(&stack, Some("approver"), &["deny", &approval]).await;
    assert_eq!(bare.status.code(), Some(2), "{:?}", text(&bare));

    let approved = airlock(
        &stack,
        Some("approver"),
        &["approve", &approval, "--reason", "ok"],
    )
    .await;
    let (stdout, stderr) = text(&approved);
    assert_eq!(approved.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("is used") && stdout.contains("queued"),
        "{stdout}"
    );

    let output = waiting.await.expect("join");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("waiting for approval"), "{stdout}");
    assert!(stdout.contains("awaiting_approval"), "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .contains("succeeded"),
        "{stdout}"
    );

    // A denied reset ends the wait with exit 1.
    let output = airlock(&stack, Some("editor"), &["reset", &slug, "--json"]).await;
    let job: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let approval = job["approval"]["id"]
        .as_str()
        .expect("an approval")
        .to_owned();
    let denied = airlock(
        &stack,
        Some("approver"),
        &["deny", &approval, "--reason", "not now"],
    )
    .await;
    assert_eq!(denied.status.code(), Some(0), "{:?}", text(&denied));
    assert!(text(&denied).0.contains("rejected"), "{:?}", text(&denied));
    let job_id = job["id"].as_str().expect("an id");
    let shown = airlock(&stack, Some("editor"), &["job", job_id]).await;
    assert!(text(&shown).0.contains("rejected"), "{:?}", text(&shown));
    stack.stop().await;
}
