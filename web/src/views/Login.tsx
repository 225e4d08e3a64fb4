import { useState } from "preact/hooks";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { describeError, login, type Session } from "../matrix";

export function Login({ onSession }: { onSession: (s: Session) => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSession(await login(username, password));
    } catch (err) {
      setError(describeError(err, true));
      setBusy(false);
    }
  }

  return (
    <main class="card" aria-labelledby="login-title">
      <h1 id="login-title">{t("loginTitle")}</h1>
      <form onSubmit={submit} aria-busy={busy}>
        <label for="login-user">{t("username")}</label>
        <input
          id="login-user"
          name="username"
          autocomplete="username"
          autocapitalize="none"
          spellcheck={false}
          required
          value={username}
          onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
        />
        <label for="login-password">{t("password")}</label>
        <input
          id="login-password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
        />
        {error && (
          <p class="error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? <Spinner label={t("signingIn")} /> : t("signIn")}
        </button>
      </form>
      <p class="hint">{t("noAccountHint")}</p>
    </main>
  );
}
