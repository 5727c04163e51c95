//! TagResource / UntagResource / ListTags through ARNs in the URI path (percent-encoded by the
//! SDK, double-encoded in the signature).

use std::collections::HashMap;

use crate::harness::*;

#[tokio::test]
async fn vault_tags_from_creation_then_tag_untag_list() {
    let dir = temp_dir();
    let server = Server::with_credential(dir.path()).await;
    let c = server.client();
    let arn = c
        .create_backup_vault()
        .backup_vault_name("tagged")
        .backup_vault_tags("team", "web")
        .send()
        .await
        .unwrap()
        .backup_vault_arn()
        .unwrap()
        .to_string();

    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap(),
        &HashMap::from([("team".to_string(), "web".to_string())])
    );

    c.tag_resource()
        .resource_arn(&arn)
        .tags("env", "prod")
        .tags("team", "platform")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap(),
        &HashMap::from([
            ("team".to_string(), "platform".to_string()),
            ("env".to_string(), "prod".to_string())
        ])
    );

    c.untag_resource()
        .resource_arn(&arn)
        .tag_key_list("team")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags().unwrap(),
        &HashMap::from([("env".to_string(), "prod".to_string())])
    );

    let err = c
        .tag_resource()
        .resource_arn(&arn)
        .tags("aws:reserved", "x")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_parameter_value_exception()
    );

    let missing = arn.replace(":tagged", ":absent");
    let err = c
        .list_tags()
        .resource_arn(&missing)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );

    // Deleting the vault deletes its tags: a new vault of the same name starts bare.
    c.delete_backup_vault()
        .backup_vault_name("tagged")
        .send()
        .await
        .unwrap();
    c.create_backup_vault()
        .backup_vault_name("tagged")
        .send()
        .await
        .unwrap();
    let tags = c.list_tags().resource_arn(&arn).send().await.unwrap();
    assert!(tags.tags().unwrap_or(&HashMap::new()).is_empty());
}
