//! [`ClientStore`](tessera_core::ClientStore): registered API clients (insertion, look-up,
//! the admin scope, collisions on id and name, listing, deletion by name).

use tessera_core::{ClientRecord, StoreError, TokenHash};

use super::{Fixture, SECOND, at, new_client};

fn names(clients: &[ClientRecord]) -> Vec<&str> {
    clients.iter().map(|client| client.name.as_str()).collect()
}

/// A client is found by its id exactly as inserted, secret hash included; its name is not an
/// id.
pub async fn client_insert_and_look_up(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    let api = new_client("c-api", "billing-api", at(0));
    let reports = new_client("c-reports", "reports", at(SECOND));
    clients.insert_client(&api).await.unwrap();
    clients.insert_client(&reports).await.unwrap();

    assert_eq!(clients.client_by_id("c-api").await.unwrap(), Some(api));
    assert_eq!(
        clients.client_by_id("c-reports").await.unwrap(),
        Some(reports)
    );
    assert_eq!(clients.client_by_id("billing-api").await.unwrap(), None);
}

/// An id nobody registered finds nothing, in an empty store and beside other clients.
pub async fn client_unknown_id_finds_nothing(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    assert_eq!(clients.client_by_id("c-unknown").await.unwrap(), None);
    assert_eq!(clients.client_by_id("").await.unwrap(), None);

    clients
        .insert_client(&new_client("c-api", "billing-api", at(0)))
        .await
        .unwrap();
    assert_eq!(clients.client_by_id("c-unknown").await.unwrap(), None);
    assert_eq!(clients.client_by_id("c-API").await.unwrap(), None);
}

/// A client with an existing id conflicts, whatever its name, and changes nothing.
pub async fn client_id_conflict(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    let original = new_client("c-api", "billing-api", at(0));
    clients.insert_client(&original).await.unwrap();

    let intruder = ClientRecord {
        secret_hash: TokenHash::from_bytes([0x42; 32]),
        ..new_client("c-api", "intruder", at(SECOND))
    };
    let result = clients.insert_client(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");

    assert_eq!(
        clients.client_by_id("c-api").await.unwrap().as_ref(),
        Some(&original)
    );
    assert_eq!(
        clients.list_clients().await.unwrap(),
        std::slice::from_ref(&original)
    );
    // Nothing was written under the intruder's name either.
    assert!(!clients.delete_client("intruder").await.unwrap());
}

/// A client with an existing name conflicts, whatever its id, and changes nothing.
pub async fn client_name_conflict(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    let original = new_client("c-api", "billing-api", at(0));
    clients.insert_client(&original).await.unwrap();

    let intruder = new_client("c-intruder", "billing-api", at(SECOND));
    let result = clients.insert_client(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");

    assert_eq!(clients.client_by_id("c-intruder").await.unwrap(), None);
    assert_eq!(
        clients.client_by_id("c-api").await.unwrap().as_ref(),
        Some(&original)
    );
    assert_eq!(
        clients.list_clients().await.unwrap(),
        std::slice::from_ref(&original)
    );
}

/// Clients list oldest first, whatever order they were added in; clients added in the same
/// millisecond list in the order they were added.
pub async fn client_list_oldest_first(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    assert_eq!(clients.list_clients().await.unwrap(), []);

    let newer = new_client("c-newer", "newer", at(2 * SECOND));
    let older = new_client("c-older", "older", at(SECOND));
    let newer_twin = new_client("c-a-newer-twin", "a-newer-twin", at(2 * SECOND));
    let oldest = new_client("c-oldest", "oldest", at(0));
    for client in [&newer, &older, &newer_twin, &oldest] {
        clients.insert_client(client).await.unwrap();
    }
    assert_eq!(
        clients.list_clients().await.unwrap(),
        [oldest, older, newer, newer_twin]
    );
}

/// Deleting by name removes exactly that client and says so once; again, or by a name nobody
/// has (its id included), it is `false` and changes nothing. The name and id are free again.
pub async fn client_delete_by_name_is_idempotent(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    let api = new_client("c-api", "billing-api", at(0));
    let reports = new_client("c-reports", "reports", at(SECOND));
    clients.insert_client(&api).await.unwrap();
    clients.insert_client(&reports).await.unwrap();

    assert!(
        !clients.delete_client("c-api").await.unwrap(),
        "an id is not a name"
    );
    assert!(clients.delete_client("billing-api").await.unwrap());
    assert_eq!(clients.client_by_id("c-api").await.unwrap(), None);
    assert_eq!(names(&clients.list_clients().await.unwrap()), ["reports"]);

    assert!(!clients.delete_client("billing-api").await.unwrap());
    assert!(!clients.delete_client("never-registered").await.unwrap());
    assert_eq!(
        clients.list_clients().await.unwrap(),
        std::slice::from_ref(&reports)
    );

    let again = new_client("c-api", "billing-api", at(2 * SECOND));
    clients.insert_client(&again).await.unwrap();
    assert_eq!(clients.client_by_id("c-api").await.unwrap(), Some(again));
}

/// The admin scope is stored with each client and read back exactly: an admin stays an
/// admin, and a client added without the scope never gains it, by id or in the list.
pub async fn client_admin_scope_round_trips(fixture: Fixture) {
    let clients = fixture.clients.as_ref();
    let operator = ClientRecord {
        admin: true,
        ..new_client("c-ops", "ops-script", at(0))
    };
    let service = new_client("c-api", "billing-api", at(SECOND));
    assert!(!service.admin);
    clients.insert_client(&operator).await.unwrap();
    clients.insert_client(&service).await.unwrap();

    let found = clients.client_by_id("c-ops").await.unwrap().unwrap();
    assert!(found.admin, "{found:?}");
    assert_eq!(found, operator);
    let found = clients.client_by_id("c-api").await.unwrap().unwrap();
    assert!(!found.admin, "{found:?}");
    assert_eq!(
        clients
            .list_clients()
            .await
            .unwrap()
            .iter()
            .map(|client| (client.name.as_str(), client.admin))
            .collect::<Vec<_>>(),
        [("ops-script", true), ("billing-api", false)]
    );
}
