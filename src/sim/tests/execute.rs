//! Execute on a simulated vtgate serving several keyspaces: the catalog statements, in-band
//! errors, and static auth.

use super::keyspaces::local;
use super::*;
use crate::source::proto::query::QueryResult;
use crate::source::proto::vtgate::ExecuteRequest;
use crate::source::proto::vtrpc::Code as VtCode;
use tonic::Code;

fn column(qr: &QueryResult) -> (String, Vec<String>) {
    let values = qr
        .rows
        .iter()
        .map(|r| {
            let row = decode_row(r).unwrap();
            String::from_utf8(row[0].clone().unwrap()).unwrap()
        })
        .collect();
    (qr.fields[0].name.clone(), values)
}

#[tokio::test]
async fn execute_answers_show_vitess_shards_and_show_tables_from() {
    let mut l = local(0).await;
    let r = l.execute("show vitess_shards").await;
    assert!(r.error.is_none());
    let qr = r.result.unwrap();
    assert_eq!(qr.fields.len(), 1);
    assert_eq!(qr.fields[0].r#type, 6165);
    let shards = ["commerce/0", "customer/-80", "customer/80-"].map(String::from);
    assert_eq!(column(&qr), ("Shards".into(), shards.to_vec()));
    let r = l.execute("  SHOW TABLES FROM `customer` ; ").await;
    let tables = vec!["corder".to_string(), "customer".to_string()];
    assert_eq!(
        column(&r.result.unwrap()),
        ("Tables_in_customer".into(), tables)
    );
    let r = l.execute("Show Tables From commerce").await;
    let (name, tables) = column(&r.result.unwrap());
    assert_eq!(
        (name.as_str(), tables),
        (
            "Tables_in_commerce",
            vec!["accounts".into(), "corder".into(), "customer".into()]
        )
    );
    assert!(l.server.requests().is_empty());
    l.server.shutdown().await;
}

#[tokio::test]
async fn execute_refuses_an_unknown_keyspace_and_other_statements_in_band() {
    let mut l = local(0).await;
    let r = l.execute("SHOW TABLES FROM nope").await;
    let e = r.error.expect("an in-band error");
    assert_eq!(e.code, VtCode::NotFound as i32);
    assert_eq!(e.message, "VT05003: unknown database 'nope' in vschema");
    assert!(r.result.is_none());
    let r = l
        .execute("select * from customer where email = 'x@y'")
        .await;
    let e = r.error.expect("an in-band error");
    assert_eq!(e.code, VtCode::Unimplemented as i32);
    assert!(e.message.contains("SELECT") && !e.message.contains("email"));
    l.server.shutdown().await;
}

#[tokio::test]
async fn static_auth_covers_execute_too() {
    let models = ModelSpec::local_example(0)
        .into_iter()
        .map(SharedModel::new)
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let security = Security {
        static_auth: Some(("u".into(), "p".into())),
        ..Default::default()
    };
    let server =
        SimVtgate::serve_keyspaces(models, listener, StreamOptions::default(), security).unwrap();
    let mut client = VitessClient::connect(server.endpoint()).await.unwrap();
    let st = client.execute(ExecuteRequest::default()).await.unwrap_err();
    assert_eq!(st.code(), Code::Unauthenticated);
    assert_eq!(server.auth_refusals(), 1);
    server.shutdown().await;
}
