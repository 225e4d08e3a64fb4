// Emoji verification (SAS) between colleagues, in their DM, through matrix-js-sdk's crypto API.
// Cross-signing is what makes a verification last: it is set up for every account once, at its
// first sign-in, while the password is at hand for the server's confirmation step.
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
  await crypto.bootstrapCrossSigning({
    authUploadDeviceSigningKeys: async (makeRequest) => {
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
    },
  });
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
