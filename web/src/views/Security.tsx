import { useEffect, useState } from "preact/hooks";
import { MatrixClient } from "matrix-js-sdk";
import { backupState, restoreBackup, setUpBackup, WrongRecoveryKey, type BackupState } from "../backup";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { describeError } from "../matrix";
import { closeDialog } from "../route";
import { Dialog } from "./Dialog";

export function Security({ client }: { client: MatrixClient }) {
  const [state, setState] = useState<BackupState | null>(null);
  const [password, setPassword] = useState("");
  const [recoveryKey, setRecoveryKey] = useState<string | null>(null);
  const [entered, setEntered] = useState("");
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    backupState(client).then(setState, (e) => setError(describeError(e)));
  }, [client]);

  async function setUp(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setRecoveryKey(await setUpBackup(client, password));
      setPassword("");
    } catch (err) {
      setError(describeError(err, true));
    } finally {
      setBusy(false);
    }
  }

  async function restore(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const n = await restoreBackup(client, entered);
      setEntered("");
      setDone(t("restored", { count: n }));
      setState("on");
    } catch (err) {
      setError(err instanceof WrongRecoveryKey ? t("wrongRecoveryKey") : describeError(err));
    } finally {
      setBusy(false);
    }
  }

  // A recovery key that was never written down is a backup nobody can restore: the dialog
  // stays until the user says it is written down.
  const close = () => {
    if (recoveryKey) {
      setError(t("recoveryKeyNotSaved"));
      return false;
    }
    closeDialog();
  };
  let body;
  if (recoveryKey) {
    body = (
      <>
        <p>{t("recoveryKeyIntro")}</p>
        <label for="recovery-key">{t("recoveryKey")}</label>
        <input id="recovery-key" class="mono" readOnly value={recoveryKey} onFocus={(e) => (e.target as HTMLInputElement).select()} />
        <p class="row">
          <button type="button" class="primary" onClick={closeDialog}>
            {t("recoveryKeyDone")}
          </button>
        </p>
      </>
    );
  } else if (state === null) {
    body = <Spinner label={t("loading")} />;
  } else if (state === "on") {
    body = <p data-testid="backup-on">{done ?? t("backupOn")}</p>;
  } else if (state === "none") {
    body = (
      <form onSubmit={setUp} aria-busy={busy}>
        <p>{t("backupNone")}</p>
        <label for="backup-password">{t("passwordToConfirm")}</label>
        <input
          id="backup-password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
        />
        <p class="row">
          <button type="submit" class="primary" disabled={busy} data-testid="backup-setup">
            {busy ? <Spinner label={t("settingUp")} /> : t("backupSetUp")}
          </button>
        </p>
      </form>
    );
  } else {
    body = (
      <form onSubmit={restore} aria-busy={busy}>
        <p>{t("backupRestorable")}</p>
        <label for="recovery-key-input">{t("recoveryKey")}</label>
        <input
          id="recovery-key-input"
          class="mono"
          autocomplete="off"
          spellcheck={false}
          required
          value={entered}
          onInput={(e) => setEntered((e.target as HTMLInputElement).value)}
        />
        <p class="row">
          <button type="submit" class="primary" disabled={busy} data-testid="backup-restore">
            {busy ? <Spinner label={t("restoring")} /> : t("restore")}
          </button>
        </p>
      </form>
    );
  }
  return (
    <Dialog title={t("securityTitle")} onClose={close}>
      {body}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}
