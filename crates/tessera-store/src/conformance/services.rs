//! [`ServiceStore`](tessera_core::ServiceStore): registered downstream services (insertion,
//! look-up by audience, collisions on name and audience, listing, deletion by name), and
//! their audited forms, which [`audit_tests!`](crate::audit_tests) runs.

use std::time::Duration;

use tessera_core::{AuditEvent, AuditKind, ServiceRecord, ServiceScope, StoreError};

use super::audit::{event, everything, trail};
use super::{Fixture, SECOND, at, new_service};

fn names(services: &[ServiceRecord]) -> Vec<&str> {
    services
        .iter()
        .map(|service| service.name.as_str())
        .collect()
}

/// A service is found by its audience exactly as inserted: every scope with its roles (or
/// none), in the order registered, the token lifetime to the millisecond, the sessions flag
/// either way. Its name is not an audience, and audiences match exactly.
pub async fn service_insert_and_look_up(fixture: Fixture) {
    let services = fixture.services.as_ref();
    let orders = new_service("orders", "https://orders.example", at(0));
    let stateful = ServiceRecord {
        scopes: vec![
            ServiceScope {
                name: "z-last-alphabetically".to_owned(),
                roles: Vec::new(),
            },
            ServiceScope {
                name: "billing:refund".to_owned(),
                roles: vec!["finance".to_owned()],
            },
            ServiceScope {
                name: "a-first-alphabetically".to_owned(),
                roles: vec![
                    "b-role".to_owned(),
                    "a-role".to_owned(),
                    "c-role".to_owned(),
                ],
            },
        ],
        max_ttl: Duration::from_millis(1),
        sessions: true,
        ..new_service("billing", "https://billing.example/api", at(SECOND))
    };
    let bare = ServiceRecord {
        scopes: Vec::new(),
        max_ttl: Duration::from_millis(86_400_001),
        ..new_service("reports", "urn:reports", at(2 * SECOND))
    };
    for service in [&orders, &stateful, &bare] {
        services.insert_service(service).await.unwrap();
    }

    for service in [&orders, &stateful, &bare] {
        assert_eq!(
            services
                .service_by_audience(&service.audience)
                .await
                .unwrap()
                .as_ref(),
            Some(service)
        );
    }
    for unknown in [
        "orders",
        "https://orders.example/",
        "HTTPS://ORDERS.EXAMPLE",
        "",
    ] {
        assert_eq!(
            services.service_by_audience(unknown).await.unwrap(),
            None,
            "{unknown:?}"
        );
    }
}

/// A service with a name that exists conflicts, whatever its audience, and changes nothing:
/// its audience finds nothing afterwards.
pub async fn service_name_conflict(fixture: Fixture) {
    let services = fixture.services.as_ref();
    let original = new_service("orders", "https://orders.example", at(0));
    services.insert_service(&original).await.unwrap();

    let intruder = ServiceRecord {
        sessions: true,
        ..new_service("orders", "https://intruder.example", at(SECOND))
    };
    let result = services.insert_service(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");

    assert_eq!(
        services
            .service_by_audience("https://intruder.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        services.list_services().await.unwrap(),
        std::slice::from_ref(&original)
    );
}

/// A service with an audience that exists conflicts, whatever its name, and changes nothing:
/// the audience still finds the original, and the intruder's name was never registered.
pub async fn service_audience_conflict(fixture: Fixture) {
    let services = fixture.services.as_ref();
    let original = new_service("orders", "https://orders.example", at(0));
    services.insert_service(&original).await.unwrap();

    let intruder = new_service("intruder", "https://orders.example", at(SECOND));
    let result = services.insert_service(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");

    assert_eq!(
        services
            .service_by_audience("https://orders.example")
            .await
            .unwrap(),
        Some(original.clone())
    );
    assert_eq!(
        services.list_services().await.unwrap(),
        std::slice::from_ref(&original)
    );
    assert!(!services.delete_service("intruder").await.unwrap());
}

/// Services list oldest first, whatever order they were added in; services added in the same
/// millisecond list in the order they were added.
pub async fn service_list_oldest_first(fixture: Fixture) {
    let services = fixture.services.as_ref();
    assert_eq!(services.list_services().await.unwrap(), []);

    let newer = new_service("newer", "urn:newer", at(2 * SECOND));
    let older = new_service("older", "urn:older", at(SECOND));
    let newer_twin = new_service("a-newer-twin", "urn:a-newer-twin", at(2 * SECOND));
    let oldest = new_service("oldest", "urn:oldest", at(0));
    for service in [&newer, &older, &newer_twin, &oldest] {
        services.insert_service(service).await.unwrap();
    }
    assert_eq!(
        services.list_services().await.unwrap(),
        [oldest, older, newer, newer_twin]
    );
}

/// Deleting by name removes exactly that service and says so once; again, or by a name
/// nobody has (its audience included), it is `false` and changes nothing. The name and the
/// audience are free again.
pub async fn service_delete_is_idempotent(fixture: Fixture) {
    let services = fixture.services.as_ref();
    let orders = new_service("orders", "https://orders.example", at(0));
    let billing = new_service("billing", "https://billing.example", at(SECOND));
    services.insert_service(&orders).await.unwrap();
    services.insert_service(&billing).await.unwrap();

    assert!(
        !services
            .delete_service("https://orders.example")
            .await
            .unwrap(),
        "an audience is not a name"
    );
    assert!(services.delete_service("orders").await.unwrap());
    assert_eq!(
        services
            .service_by_audience("https://orders.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(names(&services.list_services().await.unwrap()), ["billing"]);

    assert!(!services.delete_service("orders").await.unwrap());
    assert!(!services.delete_service("never-registered").await.unwrap());
    assert_eq!(
        services.list_services().await.unwrap(),
        std::slice::from_ref(&billing)
    );

    let again = ServiceRecord {
        sessions: true,
        ..new_service("orders", "https://orders.example", at(2 * SECOND))
    };
    services.insert_service(&again).await.unwrap();
    assert_eq!(
        services
            .service_by_audience("https://orders.example")
            .await
            .unwrap(),
        Some(again)
    );
}

/// Registering and removing a service each append their event with the change, and nothing
/// else: exactly one event each.
pub async fn audit_service_changes_record_with_the_change(fixture: Fixture) {
    let audit = trail(&fixture);
    let services = fixture.services.as_ref();
    let orders = new_service("orders", "https://orders.example", at(0));
    let added = event(AuditKind::ServiceCreated, 0).detail("name", "orders");
    let inserted = services
        .insert_service_audited(&orders, &added)
        .await
        .unwrap();
    assert!(inserted.recorded);
    assert_eq!(
        services
            .service_by_audience("https://orders.example")
            .await
            .unwrap(),
        Some(orders)
    );
    assert_eq!(everything(audit).await.len(), 1);

    let removed = event(AuditKind::ServiceDeleted, SECOND).detail("name", "orders");
    let deleted = services
        .delete_service_audited("orders", &removed)
        .await
        .unwrap();
    assert!(deleted.value && deleted.recorded);
    assert_eq!(services.list_services().await.unwrap(), []);

    let events: Vec<AuditEvent> = everything(audit)
        .await
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(events, vec![added, removed]);
}

/// A name or an audience that exists, and removing a service nobody registered, change
/// nothing and record nothing.
pub async fn audit_failed_service_changes_record_nothing(fixture: Fixture) {
    let audit = trail(&fixture);
    let services = fixture.services.as_ref();
    let orders = new_service("orders", "https://orders.example", at(0));
    services.insert_service(&orders).await.unwrap();
    for intruder in [
        new_service("orders", "https://intruder.example", at(SECOND)),
        new_service("intruder", "https://orders.example", at(SECOND)),
    ] {
        let result = services
            .insert_service_audited(&intruder, &event(AuditKind::ServiceCreated, SECOND))
            .await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }
    let result = services
        .delete_service_audited("nobody", &event(AuditKind::ServiceDeleted, SECOND))
        .await
        .unwrap();
    assert!(!result.value);

    assert_eq!(
        services.list_services().await.unwrap(),
        std::slice::from_ref(&orders)
    );
    assert_eq!(everything(audit).await, Vec::new());
}
