import { useEffect, useState } from "preact/hooks";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { describeError, register, RegisterFailure, tokenValid, type Session } from "../matrix";
import { go } from "../route";

export function Register({ token, onSession }: { token: string | null; onSession: (s: Session) => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // null: still checking the link
  const [valid, setValid] = useState<boolean | null>(token ? null : false);

  useEffect(() => {
    if (!token) return;
    tokenValid(token).then(setValid, (e) => {
      setValid(true); // let the sign-up itself report the problem
      setError(describeError(e));
    });
  }, [token]);

  async function submit(e: Event) {
    e.preventDefault();
    if (!token) return;
    if (password !== confirm) {
      setError(t("passwordsDiffer"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await register(username, password, token);
      go({ name: "home" });
      onSession(s);
    } catch (err) {
      setError(err instanceof RegisterFailure ? t(err.kind) : describeError(err));
      setBusy(false);
    }
  }

  const back = (
    <p class="hint">
      <a href="#/login">{t("toSignIn")}</a>
    </p>
  );
  if (valid === null) {
    return (
      <main class="card">
        <Spinner label={t("loading")} />
      </main>
    );
  }
  if (!valid) {
    return (
      <main class="card" aria-labelledby="register-title">
        <h1 id="register-title">{t("registerTitle")}</h1>
        <p class="error" role="alert">
          {token ? t("inviteInvalid") : t("inviteMissing")}
        </p>
        {back}
      </main>
    );
  }
  return (
    <main class="card" aria-labelledby="register-title">
      <h1 id="register-title">{t("registerTitle")}</h1>
      <p>{t("registerIntro")}</p>
      <form onSubmit={submit} aria-busy={busy}>
        <label for="reg-user">{t("username")}</label>
        <input
          id="reg-user"
          name="username"
          autocomplete="username"
          autocapitalize="none"
          spellcheck={false}
          required
          value={username}
          onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
        />
        <label for="reg-password">{t("password")}</label>
        <input
          id="reg-password"
          name="password"
          type="password"
          autocomplete="new-password"
          required
          value={password}
          onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
        />
        <label for="reg-confirm">{t("confirmPassword")}</label>
        <input
          id="reg-confirm"
          name="confirm"
          type="password"
          autocomplete="new-password"
          required
          value={confirm}
          onInput={(e) => setConfirm((e.target as HTMLInputElement).value)}
        />
        {error && (
          <p class="error" role="alert" data-testid="register-error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? <Spinner label={t("creatingAccount")} /> : t("createAccount")}
        </button>
      </form>
      {back}
    </main>
  );
}
