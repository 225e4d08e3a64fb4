// Key backup with a recovery key, all through matrix-js-sdk's crypto API: cross-signing keys,
// secret storage (`m.secret_storage`, the recovery key is its key) and server-side key backup.
// The recovery key is held in memory only while a setup or restore runs.
import { MatrixClient, RoomEvent } from "matrix-js-sdk";
import { CryptoEvent, decodeRecoveryKey, type CryptoCallbacks } from "matrix-js-sdk/lib/crypto-api/index.js";
import { crossSigningSetup, passwordAuth } from "./verification";

/** The secret-storage key of a running setup or restore; null otherwise. */
let secretKey: { keyId: string | null; key: Uint8Array } | null = null;

/** Give these to `createClient({ cryptoCallbacks })`: secret storage asks them for the key. */
export const cryptoCallbacks: CryptoCallbacks = {
  getSecretStorageKey: async ({ keys }) => {
    if (!secretKey) return null;
    const ids = Object.keys(keys);
    const id = secretKey.keyId && ids.includes(secretKey.keyId) ? secretKey.keyId : ids[0];
    return id ? [id, secretKey.key] : null;
  },
  cacheSecretStorageKey: (keyId, _info, key) => {
    secretKey = { keyId, key };
  },
};

export type BackupState = "none" | "on" | "restorable";

export async function backupState(client: MatrixClient): Promise<BackupState> {
  const crypto = client.getCrypto();
  if (!crypto) return "none";
  if (await crypto.getActiveSessionBackupVersion()) return "on";
  return (await crypto.getKeyBackupInfo()) ? "restorable" : "none";
}

/**
 * Sets up cross-signing, secret storage with a new recovery key, and a new key backup.
 * Returns the recovery key to show to the user. Uploading the cross-signing keys needs the
 * account password (user-interactive auth) unless the server waives it for first keys.
 */
export async function setUpBackup(client: MatrixClient, password: string): Promise<string> {
  const crypto = client.getCrypto()!;
  await crossSigningSetup.catch(() => undefined);
  let recoveryKey = "";
  try {
    await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(client, password) });
    await crypto.bootstrapSecretStorage({
      setupNewSecretStorage: true,
      setupNewKeyBackup: true,
      createSecretStorageKey: async () => {
        const k = await crypto.createRecoveryKeyFromPassphrase();
        recoveryKey = k.encodedPrivateKey ?? "";
        return k;
      },
    });
  } finally {
    secretKey = null;
  }
  return recoveryKey;
}

export class WrongRecoveryKey extends Error {}

/**
 * Restores the key backup with the recovery key: checks the key against secret storage, loads
 * the backup key from there, and imports every room key. Returns how many keys were imported;
 * messages waiting for them are decrypted by the SDK.
 */
export async function restoreBackup(client: MatrixClient, recoveryKey: string): Promise<number> {
  const crypto = client.getCrypto()!;
  let key: Uint8Array;
  try {
    key = decodeRecoveryKey(recoveryKey.trim());
  } catch {
    throw new WrongRecoveryKey();
  }
  const keyId = await client.secretStorage.getDefaultKeyId();
  const stored = keyId ? await client.secretStorage.getKey(keyId) : null;
  if (!keyId || !stored || !(await client.secretStorage.checkKey(key, stored[1]))) throw new WrongRecoveryKey();
  secretKey = { keyId, key };
  try {
    // Trust this device with the cross-signing keys from secret storage, then the backup.
    await crypto.bootstrapCrossSigning({});
    await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
    await crypto.checkKeyBackupAndEnable();
    const r = await crypto.restoreKeyBackup();
    return r.imported;
  } finally {
    secretKey = null;
  }
}

/** Longest wait at sign-out for room keys still on their way to the backup. */
const BACKUP_FLUSH_MAX_MS = 15_000;
const idle = new WeakMap<MatrixClient, { idleAt: number; activityAt: number }>();

/** Notes when the backup last had nothing left to upload, and when messages last came or went. */
export function trackBackup(client: MatrixClient): void {
  const s = { idleAt: 0, activityAt: Date.now() };
  idle.set(client, s);
  client.on(CryptoEvent.KeyBackupSessionsRemaining, (n: number) => {
    if (n === 0) s.idleAt = Date.now();
  });
  client.on(RoomEvent.Timeline, () => {
    s.activityAt = Date.now();
  });
}

/** Before signing out: waits (bounded) until keys of recent messages are in the backup. */
export async function flushBackup(client: MatrixClient): Promise<void> {
  const s = idle.get(client);
  if (!s || !(await client.getCrypto()?.getActiveSessionBackupVersion())) return;
  if (s.idleAt > s.activityAt) return;
  await new Promise<void>((resolve) => {
    const done = (n: number) => {
      if (n !== 0) return;
      clearTimeout(timer);
      client.off(CryptoEvent.KeyBackupSessionsRemaining, done);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off(CryptoEvent.KeyBackupSessionsRemaining, done);
      resolve();
    }, BACKUP_FLUSH_MAX_MS);
    client.on(CryptoEvent.KeyBackupSessionsRemaining, done);
  });
}
