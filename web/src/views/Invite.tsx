import { useState } from "preact/hooks";
import { MatrixClient } from "matrix-js-sdk";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { createInviteToken, describeError, inviteLink } from "../matrix";
import { closeDialog } from "../route";
import { Dialog } from "./Dialog";

export function Invite({ client }: { client: MatrixClient }) {
  const [link, setLink] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function create() {
    setBusy(true);
    setError(null);
    setCopied(false);
    try {
      setLink(inviteLink(await createInviteToken(client)));
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  }

  async function copy() {
    if (!link) return;
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
    } catch {
      // No clipboard access (e.g. not a secure context): the link stays selectable.
    }
  }

  return (
    <Dialog title={t("inviteTitle")} onClose={closeDialog}>
      <p>{t("inviteIntro")}</p>
      <button type="button" class="primary" onClick={create} disabled={busy} data-testid="create-invite">
        {busy ? <Spinner label={t("creatingLink")} /> : t("createLink")}
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {link && (
        <div class="invite-link">
          <label for="invite-link">{t("inviteLink")}</label>
          <input id="invite-link" readOnly value={link} onFocus={(e) => (e.target as HTMLInputElement).select()} />
          <button type="button" onClick={copy}>
            {copied ? t("copied") : t("copy")}
          </button>
        </div>
      )}
    </Dialog>
  );
}
