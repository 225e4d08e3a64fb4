import { useCallback, useEffect, useState } from "preact/hooks";
import { ClientEvent, HttpApiEvent, MatrixClient, SyncState } from "matrix-js-sdk";
import { t } from "./i18n";
import { IconGear, IconKey, IconLink, IconLogout, IconPlus, IconVideo, Spinner } from "./icons";
import {
  describeError,
  forgetSession,
  isAdmin,
  loadSession,
  logout,
  startClient,
  takeFreshPassword,
  type Session,
} from "./matrix";
import { ensureCrossSigning, useVerification } from "./verification";
import { Verify } from "./views/Verify";
import { go, screenOf, useRoute } from "./route";
import { useClientTick } from "./rooms";
import { Invite } from "./views/Invite";
import { Meetings } from "./views/Meetings";
import { LangSelect } from "./views/LangSelect";
import { Login } from "./views/Login";
import { NewChat } from "./views/NewChat";
import { Register } from "./views/Register";
import { Security } from "./views/Security";
import { Settings } from "./views/Settings";
import { RoomList } from "./views/RoomList";
import { RoomView } from "./views/RoomView";

export function App() {
  const [, setLangTick] = useState(0);
  const relabel = useCallback(() => setLangTick((n) => n + 1), []);
  const [session, setSession] = useState<Session | null>(loadSession);
  const route = useRoute();

  useEffect(() => {
    if (!session && route.name !== "login" && route.name !== "register") go({ name: "login" });
    if (session && (route.name === "login" || route.name === "register")) go({ name: "home" });
  }, [session, route.name]);

  return (
    <div class="app">
      {session ? (
        <Chat key={session.accessToken} session={session} onLogout={() => setSession(null)} relabel={relabel} />
      ) : (
        <div class="outside">
          <header class="top">
            <span class="brand">{t("appName")}</span>
            <LangSelect onChange={relabel} />
          </header>
          {route.name === "register" ? (
            <Register token={route.token} onSession={setSession} />
          ) : (
            <Login onSession={setSession} />
          )}
        </div>
      )}
    </div>
  );
}

function Chat({ session, onLogout, relabel }: { session: Session; onLogout: () => void; relabel: () => void }) {
  const [client, setClient] = useState<MatrixClient | null>(null);
  const [ready, setReady] = useState(false);
  // The first sync failed: the SDK keeps retrying; say so instead of only spinning.
  const [unreachable, setUnreachable] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [admin, setAdmin] = useState(false);
  const [leaving, setLeaving] = useState(false);

  useEffect(() => {
    let c: MatrixClient | null = null;
    let stopped = false;
    startClient(session).then(
      (started) => {
        c = started;
        if (stopped) {
          started.stopClient();
          return;
        }
        const onSync = (state: SyncState) => {
          if (state === SyncState.Prepared || state === SyncState.Syncing) setReady(true);
          setUnreachable(state === SyncState.Error || state === SyncState.Reconnecting);
        };
        started.on(ClientEvent.Sync, onSync);
        if (started.isInitialSyncComplete()) setReady(true);
        // The server no longer knows this session (logged out elsewhere, deactivated).
        started.on(HttpApiEvent.SessionLoggedOut, () => {
          forgetSession();
          logout(started);
        });
        setClient(started);
        isAdmin(started).then(setAdmin);
        // A first sign-in of the account: create its cross-signing identity (for verification).
        const password = takeFreshPassword();
        if (password) {
          const whenSynced = started.isInitialSyncComplete()
            ? Promise.resolve()
            : new Promise<void>((resolve) => started.once(ClientEvent.Sync, () => resolve()));
          ensureCrossSigning(started, password, whenSynced)
            .catch((e) => console.warn("cross-signing setup failed", e));
        }
      },
      (e) => setError(describeError(e)),
    );
    return () => {
      stopped = true;
      c?.stopClient();
    };
  }, [session]);

  async function signOut() {
    setLeaving(true);
    await logout(client);
    onLogout();
  }

  if (error) {
    return (
      <main class="card">
        <p class="error" role="alert">
          {error}
        </p>
        <button type="button" onClick={signOut}>
          {t("signOut")}
        </button>
      </main>
    );
  }
  if (!client || !ready || leaving) {
    return (
      <main class="card loading">
        <Spinner label={leaving ? t("signingOut") : t("loading")} />
        {unreachable && !leaving && (
          <p class="error" role="alert">
            {t("serverUnreachableRetrying")}
          </p>
        )}
      </main>
    );
  }
  // Generated room names ("A und B") follow the language too.
  const relabelRooms = () => {
    for (const room of client.getRooms()) room.recalculate();
    relabel();
  };
  return <Ready client={client} admin={admin} signOut={signOut} relabel={relabelRooms} />;
}

function Ready({
  client,
  admin,
  signOut,
  relabel,
}: {
  client: MatrixClient;
  admin: boolean;
  signOut: () => void;
  relabel: () => void;
}) {
  const tick = useClientTick(client);
  const [verification, setVerification] = useVerification(client);
  const route = useRoute();
  // A dialog opens over the chat, which stays as it was (and gets the focus back after it).
  const screen = screenOf(route);
  const roomId = screen.name === "room" ? screen.roomId : null;
  const room = roomId ? client.getRoom(roomId) : null;
  const me = client.getUserId() ?? "";

  return (
    <div class={`shell${roomId ? " in-room" : ""}`}>
      <aside class="sidebar" aria-label={t("chats")}>
        <header class="top">
          <span class="brand">{t("appName")}</span>
          <span class="me" title={t("signedInAs", { user: me })} data-testid="me">
            {me}
          </span>
        </header>
        <nav class="actions">
          <a class="button" href="#/new">
            <IconPlus /> {t("newChat")}
          </a>
          <a class="button" href="#/meetings" data-testid="meetings">
            <IconVideo /> {t("meetings")}
          </a>
          <a class="button" href="#/security" data-testid="security">
            <IconKey /> {t("security")}
          </a>
          {admin && (
            <a class="button" href="#/invite" data-testid="invite-colleague">
              <IconLink /> {t("inviteColleague")}
            </a>
          )}
        </nav>
        <h1 class="visually-hidden">{t("chats")}</h1>
        <RoomList client={client} selected={roomId} />
        <footer class="bottom">
          <a class="button plain" href="#/settings" data-testid="settings">
            <IconGear /> {t("settings")}
          </a>
          <button type="button" class="plain" onClick={signOut}>
            <IconLogout /> {t("signOut")}
          </button>
        </footer>
      </aside>
      <main class="main">
        {room ? (
          // Keyed: another chat starts with fresh state (errors, upload, pagination, draft).
          <RoomView key={room.roomId} client={client} room={room} tick={tick} onVerify={setVerification} />
        ) : roomId ? (
          <div class="placeholder">
            <Spinner label={t("loading")} />
          </div>
        ) : (
          <p class="placeholder">{t("selectRoom")}</p>
        )}
      </main>
      {route.name === "new" && <NewChat client={client} />}
      {route.name === "invite" && admin && <Invite client={client} />}
      {route.name === "security" && <Security client={client} />}
      {route.name === "meetings" && <Meetings client={client} />}
      {route.name === "settings" && <Settings client={client} relabel={relabel} onVerify={setVerification} />}
      {verification && (
        <Verify
          key={verification.transactionId ?? ""}
          client={client}
          request={verification}
          onClose={() => setVerification(null)}
        />
      )}
    </div>
  );
}
