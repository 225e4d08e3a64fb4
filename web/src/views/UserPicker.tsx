import { useEffect, useRef, useState } from "preact/hooks";
import { MatrixClient } from "matrix-js-sdk";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { describeError } from "../matrix";

/** How long typing pauses before the user directory is asked. */
const SEARCH_DEBOUNCE_MS = 250;
const SEARCH_LIMIT = 20;

export interface Hit {
  user_id: string;
  display_name?: string;
}

/**
 * The user a term names exactly (`@name:server`, or a bare username on our own server), if their
 * profile exists. Ward's directory only lists people who already share a room with the searcher
 * (no enumeration of all accounts), so a colleague is found by their exact username.
 */
async function exactUser(client: MatrixClient, term: string): Promise<Hit | null> {
  const name = term.replace(/^@/, "").toLowerCase();
  const userId = term.startsWith("@") && term.includes(":") ? term : `@${name}:${client.getDomain()}`;
  if (!/^@[a-z0-9._=\-/+]+:[^\s]+$/.test(userId)) return null;
  try {
    const p = await client.getProfileInfo(userId);
    return { user_id: userId, display_name: p.displayname };
  } catch {
    return null;
  }
}

/** A search field over the user directory; `onPick` gets the chosen colleague. */
export function UserPicker({
  client,
  onPick,
  pickLabel,
  disabled,
  exclude = [],
}: {
  client: MatrixClient;
  onPick: (hit: Hit) => void;
  pickLabel: (name: string) => string;
  disabled?: boolean;
  exclude?: string[];
}) {
  const [term, setTerm] = useState("");
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [searching, setSearching] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const seq = useRef(0);

  useEffect(() => {
    const q = term.trim();
    const mine = ++seq.current; // a search still running for an earlier term is ignored
    if (!q) {
      setHits(null);
      setSearching(false);
      setError(null);
      return;
    }
    const timer = setTimeout(async () => {
      setSearching(true);
      try {
        const [r, exact] = await Promise.all([
          client.searchUserDirectory({ term: q, limit: SEARCH_LIMIT }),
          exactUser(client, q),
        ]);
        if (mine !== seq.current) return;
        const found = r.results.filter((h) => h.user_id !== client.getUserId());
        if (exact && exact.user_id !== client.getUserId() && !found.some((h) => h.user_id === exact.user_id)) {
          found.unshift(exact);
        }
        setHits(found);
        setError(null);
      } catch (e) {
        if (mine === seq.current) setError(describeError(e));
      } finally {
        if (mine === seq.current) setSearching(false);
      }
    }, SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [term, client]);

  const shown = hits?.filter((h) => !exclude.includes(h.user_id)) ?? null;
  return (
    <div class="user-picker">
      <label for="user-search">{t("searchColleague")}</label>
      <input
        id="user-search"
        type="search"
        autocomplete="off"
        autoFocus
        placeholder={t("searchHint")}
        value={term}
        onInput={(e) => setTerm((e.target as HTMLInputElement).value)}
      />
      {searching && <Spinner label={t("loading")} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {shown && shown.length === 0 && !searching && <p class="empty">{t("noResults")}</p>}
      {shown && shown.length > 0 && (
        <ul class="user-list">
          {shown.map((h) => (
            <li key={h.user_id}>
              <button
                type="button"
                disabled={disabled}
                onClick={() => onPick(h)}
                aria-label={pickLabel(h.display_name || h.user_id)}
                data-user-id={h.user_id}
              >
                <span class="user-name">{h.display_name || h.user_id}</span>
                <span class="user-id">{h.user_id}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
