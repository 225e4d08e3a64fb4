// The key that encrypts matrix-js-sdk's crypto store (IndexedDB) at rest: 32 random bytes given to
// `initRustCrypto({ storageKey })`. It is never stored as it is: IndexedDB holds it only
// encrypted (AES-GCM) under a WebCrypto key created non-extractable, which the browser keeps in
// the same database and lets this origin's scripts use but never read out. One key per session
// (user and device); signing out deletes the database.
//
// What this protects: the crypto store's contents (Olm/Megolm sessions, cross-signing and backup
// keys) are not readable from the store alone, nor by a script that can only read storage. The
// browser itself still keeps the wrapping key in its profile, so a stolen unlocked disk with the
// profile on it is not protected by this — that is what disk encryption is for.

const DB_NAME = "ward-store-keys";
const OBJECTS = "keys";
const KEY_BYTES = 32;

interface Wrapped {
  id: string;
  wrappingKey: CryptoKey;
  iv: Uint8Array<ArrayBuffer>;
  ciphertext: ArrayBuffer;
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function open(): Promise<IDBDatabase> {
  const r = indexedDB.open(DB_NAME, 1);
  r.onupgradeneeded = () => r.result.createObjectStore(OBJECTS, { keyPath: "id" });
  return request(r);
}

async function withStore<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  try {
    const tx = db.transaction(OBJECTS, mode);
    const result = await request(f(tx.objectStore(OBJECTS)));
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
    return result;
  } finally {
    db.close();
  }
}

function sessionId(userId: string, deviceId: string): string {
  return `${userId}|${deviceId}`;
}

/** Creates and stores (wrapped) a new random store key for this session; returns it. */
export async function createStoreKey(userId: string, deviceId: string): Promise<Uint8Array> {
  const id = sessionId(userId, deviceId);
  const key = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  const wrappingKey = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(id) },
    wrappingKey,
    key,
  );
  const record: Wrapped = { id, wrappingKey, iv, ciphertext };
  await withStore("readwrite", (s) => s.put(record));
  return key;
}

/** This session's store key, or null if there is none (or it cannot be unwrapped). */
export async function loadStoreKey(userId: string, deviceId: string): Promise<Uint8Array | null> {
  const id = sessionId(userId, deviceId);
  const record = (await withStore("readonly", (s) => s.get(id))) as Wrapped | undefined;
  if (!record) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: record.iv, additionalData: new TextEncoder().encode(id) },
      record.wrappingKey,
      record.ciphertext,
    );
    return plain.byteLength === KEY_BYTES ? new Uint8Array(plain) : null;
  } catch {
    return null;
  }
}

/** Deletes every stored key (at sign-out); the encrypted store is unreadable from then on. */
export function deleteStoreKeys(): Promise<void> {
  return new Promise((resolve) => {
    const r = indexedDB.deleteDatabase(DB_NAME);
    r.onsuccess = r.onerror = r.onblocked = () => resolve();
  });
}
