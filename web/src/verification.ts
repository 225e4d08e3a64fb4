// Emoji verification (SAS) through matrix-js-sdk's crypto API: with colleagues in their DM, and
// between one's own devices by to-device messages (Settings → devices). Cross-signing is what
// makes a verification last: it is set up for every account once, at its first sign-in (or with
// the key backup), while the password is at hand for the server's confirmation step. Verifying
// an own device from one that holds the private cross-signing keys signs it; the newly verified
// device then asks for those keys (the SDK's secret gossiping), so it can sign others later.
import { useEffect, useState } from "preact/hooks";
import { MatrixClient, MatrixError } from "matrix-js-sdk";
import {
  CryptoEvent,
  VerificationRequestEvent,
  type VerificationRequest,
} from "matrix-js-sdk/lib/crypto-api/index.js";

/** The running first-sign-in setup; other cross-signing work (key backup) waits for it. */
export let crossSigningSetup: Promise<void> = Promise.resolve();

/** Creates cross-signing keys if the account has none yet (a first sign-in). */
export function ensureCrossSigning(client: MatrixClient, password: string, after: Promise<void>): Promise<void> {
  crossSigningSetup = after.then(() => createCrossSigning(client, password));
  return crossSigningSetup;
}

async function createCrossSigning(client: MatrixClient, password: string): Promise<void> {
  const crypto = client.getCrypto();
  if (!crypto || (await crypto.userHasCrossSigningKeys(client.getSafeUserId(), true))) return;
  await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordAuth(client, password) });
}

/**
 * Confirms uploading cross-signing keys with the account password: tried without first (the
 * server waives it for an account's first keys), then with the session the server's 401 names.
 */
export function passwordAuth(
  client: MatrixClient,
  password: string,
): (makeRequest: (auth: Record<string, unknown> | null) => Promise<unknown>) => Promise<void> {
  return async (makeRequest) => {
    try {
      await makeRequest(null);
    } catch (e) {
      if (!(e instanceof MatrixError) || e.httpStatus !== 401 || !e.data?.session) throw e;
      await makeRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: client.getSafeUserId() },
        password,
        session: e.data.session,
      });
    }
  };
}

/** The verification request in progress (incoming or started here), re-rendering on changes. */
export function useVerification(client: MatrixClient): [VerificationRequest | null, (r: VerificationRequest | null) => void] {
  const [request, setRequest] = useState<VerificationRequest | null>(null);
  const [, setTick] = useState(0);
  useEffect(() => {
    const onRequest = (r: VerificationRequest) => setRequest(r);
    client.on(CryptoEvent.VerificationRequestReceived, onRequest);
    return () => {
      client.off(CryptoEvent.VerificationRequestReceived, onRequest);
    };
  }, [client]);
  useEffect(() => {
    if (!request) return;
    const onChange = () => setTick((n) => n + 1);
    request.on(VerificationRequestEvent.Change, onChange);
    return () => {
      request.off(VerificationRequestEvent.Change, onChange);
    };
  }, [request]);
  return [request, setRequest];
}

/** Asks `userId` to verify in the DM `roomId`. */
export async function requestVerification(client: MatrixClient, userId: string, roomId: string): Promise<VerificationRequest> {
  return client.getCrypto()!.requestVerificationDM(userId, roomId);
}

/** The account has no cross-signing identity: verifying an own device could not be cross-signed. */
export class NoCrossSigning extends Error {}

/** Asks another of one's own devices to verify with this one, by to-device messages. */
export async function requestOwnDeviceVerification(client: MatrixClient, deviceId: string): Promise<VerificationRequest> {
  const crypto = client.getCrypto()!;
  const me = client.getSafeUserId();
  if (!(await crypto.userHasCrossSigningKeys(me, true))) throw new NoCrossSigning();
  return crypto.requestDeviceVerification(me, deviceId);
}

/**
 * Verified: cross-signed by a trusted identity or verified in this browser ("crossSigned" tells
 * which); unknown: the device's keys have not arrived yet.
 */
export interface DeviceTrust {
  trust: "verified" | "unverified" | "unknown";
  crossSigned: boolean;
}

/** How far this browser trusts each of the given devices of the signed-in user. */
export async function ownDeviceTrust(client: MatrixClient, deviceIds: string[]): Promise<Record<string, DeviceTrust>> {
  const crypto = client.getCrypto();
  const me = client.getSafeUserId();
  const out: Record<string, DeviceTrust> = {};
  for (const id of deviceIds) {
    const s = crypto ? await crypto.getDeviceVerificationStatus(me, id) : null;
    out[id] = {
      trust: s === null ? "unknown" : s.isVerified() ? "verified" : "unverified",
      crossSigned: s?.crossSigningVerified ?? false,
    };
  }
  return out;
}

/** A number that changes whenever device lists or cross-signing trust change. */
export function useTrustTick(client: MatrixClient): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const bump = () => setTick((n) => n + 1);
    const events = [CryptoEvent.DevicesUpdated, CryptoEvent.UserTrustStatusChanged, CryptoEvent.KeysChanged] as const;
    for (const e of events) client.on(e, bump);
    return () => {
      for (const e of events) client.off(e, bump);
    };
  }, [client]);
  return tick;
}

/** The display name of one of the signed-in user's devices, as the crypto layer knows it. */
export async function ownDeviceName(client: MatrixClient, deviceId: string): Promise<string | null> {
  const me = client.getSafeUserId();
  const devices = await client.getCrypto()?.getUserDeviceInfo([me]);
  return devices?.get(me)?.get(deviceId)?.displayName ?? null;
}
