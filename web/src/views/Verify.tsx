import { useEffect, useState } from "preact/hooks";
import { MatrixClient } from "matrix-js-sdk";
import {
  VerificationPhase,
  VerifierEvent,
  type ShowSasCallbacks,
  type VerificationRequest,
} from "matrix-js-sdk/lib/crypto-api/index.js";
import { sasEmojiName, t } from "../i18n";
import { Spinner } from "../icons";
import { describeError } from "../matrix";
import { ownDeviceName } from "../verification";
import { Dialog } from "./Dialog";

/**
 * Walks through one verification request: accept, compare emoji, done. A colleague's request
 * names the colleague; one between one's own devices names the other device.
 */
export function Verify({ client, request, onClose }: { client: MatrixClient; request: VerificationRequest; onClose: () => void }) {
  const [sas, setSas] = useState<ShowSasCallbacks | null>(null);
  const [confirmed, setConfirmed] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const other = request.otherUserId;
  const self = request.isSelfVerification;
  const deviceId = request.otherDeviceId;
  const [deviceName, setDeviceName] = useState<string | null>(null);
  useEffect(() => {
    if (self && deviceId) ownDeviceName(client, deviceId).then(setDeviceName, () => undefined);
  }, [self, deviceId]);
  const deviceLabel = deviceName ? `${deviceName} (${deviceId})` : (deviceId ?? "");
  const name = self ? t("yourDevice", { device: deviceLabel }) : (client.getUser(other)?.displayName ?? other);
  const phase = request.phase;

  // The side that sent the request starts SAS once the other accepted.
  useEffect(() => {
    if (phase === VerificationPhase.Ready && request.initiatedByMe && !request.verifier) {
      request.startVerification("m.sas.v1").catch((e) => setError(describeError(e)));
    }
  }, [phase]);

  // Both sides run the verifier once it exists and show its emoji.
  const verifier = request.verifier;
  useEffect(() => {
    if (!verifier) return;
    const onShow = (s: ShowSasCallbacks) => setSas(s);
    verifier.on(VerifierEvent.ShowSas, onShow);
    const existing = verifier.getShowSasCallbacks();
    if (existing) setSas(existing);
    verifier.verify().catch((e) => setError(describeError(e)));
    return () => {
      verifier.off(VerifierEvent.ShowSas, onShow);
    };
  }, [verifier]);

  function close() {
    if (phase !== VerificationPhase.Done && phase !== VerificationPhase.Cancelled) request.cancel().catch(() => undefined);
    onClose();
  }

  let body;
  if (phase === VerificationPhase.Done) {
    body = (
      <p role="status" data-testid="verified">
        {self ? t("verifiedDevice", { device: name }) : t("verifiedUser", { user: name })}
      </p>
    );
  } else if (phase === VerificationPhase.Cancelled) {
    body = <p class="error">{t("verificationCancelled")}</p>;
  } else if (sas?.sas.emoji) {
    body = (
      <>
        <p>{self ? t("compareEmojiDevice", { device: name }) : t("compareEmoji", { user: name })}</p>
        <ol class="emoji" data-testid="sas-emoji">
          {sas.sas.emoji.map(([emoji, label], i) => (
            <li key={i}>
              <span class="emoji-char" aria-hidden="true">
                {emoji}
              </span>
              <span class="emoji-name">{sasEmojiName(emoji, label)}</span>
            </li>
          ))}
        </ol>
        {confirmed ? (
          <Spinner label={t("waitingForOther", { user: name })} />
        ) : (
          <p class="row">
            <button
              type="button"
              class="primary"
              data-testid="sas-match"
              onClick={() => {
                setConfirmed(true);
                sas.confirm().catch((e) => setError(describeError(e)));
              }}
            >
              {t("theyMatch")}
            </button>
            <button type="button" onClick={() => sas.mismatch()}>
              {t("theyDontMatch")}
            </button>
          </p>
        )}
      </>
    );
  } else if (phase === VerificationPhase.Requested && !request.initiatedByMe) {
    body = (
      <>
        <p>{self ? t("wantsToVerifyDevice", { device: deviceLabel }) : t("wantsToVerify", { user: name })}</p>
        <p class="row">
          <button
            type="button"
            class="primary"
            data-testid="verify-accept"
            onClick={() => request.accept().catch((e) => setError(describeError(e)))}
          >
            {t("accept")}
          </button>
          <button type="button" onClick={close}>
            {t("decline")}
          </button>
        </p>
      </>
    );
  } else {
    body = <Spinner label={t("waitingForOther", { user: name })} />;
  }

  return (
    <Dialog title={self ? t("verifyDeviceTitle") : t("verifyTitle")} onClose={close}>
      {body}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}
