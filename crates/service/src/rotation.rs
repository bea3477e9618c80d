use integrations_secrets::{Keyring, MasterKey, WrappedDataKey};
use integrations_store::{DataKeyRecord, Store};

use crate::ServiceError;

/// What a rotation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Data keys re-wrapped under the new master key.
    pub rewrapped: usize,
    /// Data keys changed concurrently and left for a re-run.
    pub skipped: usize,
}

/// Re-wraps every tenant data key under `new_key`. Secrets are untouched (their data keys do not
/// change) and each row is replaced atomically, so servers keep working throughout as long as
/// their keyring holds both keys. Running it again finishes what an interrupted run left.
pub async fn rotate_master_key(
    store: &Store,
    keyring: &Keyring,
    new_key: &MasterKey,
) -> Result<RotationReport, ServiceError> {
    let mut report = RotationReport::default();
    for record in store.data_keys_not_under(new_key.id()).await? {
        let wrapped = WrappedDataKey {
            master_key_id: record.master_key_id.clone(),
            ciphertext: record.wrapped_key.clone(),
        };
        let rewrapped = keyring.rewrap(&record.tenant_id, &wrapped, new_key)?;
        let next = DataKeyRecord {
            tenant_id: record.tenant_id.clone(),
            master_key_id: rewrapped.master_key_id,
            wrapped_key: rewrapped.ciphertext,
        };
        if store.replace_data_key(&record, &next).await? {
            report.rewrapped += 1;
        } else {
            report.skipped += 1;
        }
    }
    tracing::info!(
        rewrapped = report.rewrapped,
        skipped = report.skipped,
        new_master_key_id = new_key.id(),
        "master key rotation done"
    );
    Ok(report)
}
