import { useEffect, useState } from "preact/hooks";
import { MatrixClient, MatrixError, type IMyDevice } from "matrix-js-sdk";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { lang, t } from "../i18n";
import { Spinner } from "../icons";
import { describeError, loadSession } from "../matrix";
import { closeDialog } from "../route";
import { NoCrossSigning, ownDeviceTrust, requestOwnDeviceVerification, useTrustTick, type DeviceTrust } from "../verification";
import { Dialog } from "./Dialog";
import { LangSelect } from "./LangSelect";

/**
 * Settings: display name, language, this account's devices (verified or not, verify by emoji,
 * rename, sign out the others).
 */
export function Settings({
  client,
  relabel,
  onVerify,
}: {
  client: MatrixClient;
  relabel: () => void;
  onVerify: (r: VerificationRequest) => void;
}) {
  const me = client.getSafeUserId();
  const [name, setName] = useState(client.getUser(me)?.displayName ?? "");
  const [devices, setDevices] = useState<IMyDevice[] | null>(null);
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function load() {
    try {
      setDevices((await client.getDevices()).devices);
    } catch (e) {
      setError(describeError(e));
    }
  }
  useEffect(() => {
    load();
    client.getProfileInfo(me).then((p) => p.displayname && setName(p.displayname), () => undefined);
  }, [client]);

  // Whether each device is verified; re-read whenever the crypto layer learns something new
  // (a device signed in or out, a verification finished, cross-signing keys arrived).
  const trustTick = useTrustTick(client);
  const [trust, setTrust] = useState<Record<string, DeviceTrust>>({});
  const deviceIds = (devices ?? []).map((d) => d.device_id).join(" ");
  useEffect(() => {
    if (!devices) return;
    let gone = false;
    ownDeviceTrust(client, devices.map((d) => d.device_id)).then(
      (r) => gone || setTrust(r),
      () => undefined,
    );
    return () => {
      gone = true;
    };
  }, [client, deviceIds, trustTick]);
  // A device that signed in while the dialog is open: list it.
  useEffect(() => {
    if (trustTick > 0) load();
  }, [trustTick]);

  async function verify(deviceId: string) {
    setError(null);
    setStatus(null);
    try {
      onVerify(await requestOwnDeviceVerification(client, deviceId));
    } catch (e) {
      setError(e instanceof NoCrossSigning ? t("noCrossSigning") : describeError(e));
    }
  }

  /** `withPassword`: the action is confirmed with the password (see describeError). */
  async function run(what: () => Promise<unknown>, done: string, withPassword = false) {
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      await what();
      setStatus(done);
    } catch (e) {
      setError(describeError(e, withPassword));
    } finally {
      setBusy(false);
    }
  }

  async function signOutOthers(e: Event) {
    e.preventDefault();
    const others = (devices ?? []).map((d) => d.device_id).filter((id) => id !== client.getDeviceId());
    if (others.length === 0) return;
    await run(async () => {
      try {
        await client.deleteMultipleDevices(others);
      } catch (err) {
        if (!(err instanceof MatrixError) || err.httpStatus !== 401 || !err.data?.session) throw err;
        await client.deleteMultipleDevices(others, {
          type: "m.login.password",
          identifier: { type: "m.id.user", user: me },
          password,
          session: err.data.session,
        });
      }
      setPassword("");
      await load();
    }, t("othersSignedOut"), true);
  }

  const others = (devices ?? []).filter((d) => d.device_id !== client.getDeviceId());
  return (
    <Dialog title={t("settings")} onClose={closeDialog}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          run(() => client.setDisplayName(name.trim()), t("saved"));
        }}
      >
        <label for="display-name">{t("displayName")}</label>
        <div class="row">
          <input id="display-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          <button type="submit" disabled={busy || !name.trim()}>
            {t("save")}
          </button>
        </div>
      </form>
      <h3>{t("language")}</h3>
      <LangSelect onChange={relabel} />
      <h3>{t("devices")}</h3>
      {loadSession()?.encryptedStore === false && <p class="hint">{t("storeNotEncrypted")}</p>}
      {devices === null ? (
        <Spinner label={t("loading")} />
      ) : (
        <ul class="devices">
          {devices.map((d) => (
            <DeviceRow
              key={d.device_id}
              device={d}
              current={d.device_id === client.getDeviceId()}
              trust={trust[d.device_id] ?? { trust: "unknown", crossSigned: false }}
              onVerify={() => verify(d.device_id)}
              onRename={(n) => run(async () => {
                await client.setDeviceDetails(d.device_id, { display_name: n });
                await load();
              }, t("saved"))}
            />
          ))}
        </ul>
      )}
      {others.length > 0 && (
        <form onSubmit={signOutOthers}>
          <label for="devices-password">{t("passwordToConfirm")}</label>
          <input
            id="devices-password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
          <p class="row">
            <button type="submit" disabled={busy} data-testid="sign-out-others">
              {t("signOutOthers", { count: others.length })}
            </button>
          </p>
        </form>
      )}
      {busy && <Spinner label={t("loading")} />}
      {status && <p role="status">{status}</p>}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}

function DeviceRow({
  device,
  current,
  trust,
  onVerify,
  onRename,
}: {
  device: IMyDevice;
  current: boolean;
  trust: DeviceTrust;
  onVerify: () => void;
  onRename: (name: string) => void;
}) {
  const [name, setName] = useState(device.display_name ?? "");
  const seen = device.last_seen_ts
    ? new Date(device.last_seen_ts).toLocaleString(lang() === "de" ? "de-DE" : "en-GB")
    : null;
  return (
    <li
      class="device"
      data-device-id={device.device_id}
      data-trust={trust.trust}
      data-cross-signed={String(trust.crossSigned)}
    >
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          onRename(name.trim());
        }}
      >
        <label class="visually-hidden" for={`device-${device.device_id}`}>
          {t("deviceName")}
        </label>
        <input id={`device-${device.device_id}`} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <button type="submit" class="small">
          {t("rename")}
        </button>
      </form>
      <span class="user-id">
        {device.device_id}
        {current ? ` · ${t("thisDevice")}` : ""}
        {seen ? ` · ${t("lastSeen", { when: seen })}` : ""}
      </span>
      <span class="row trust">
        {trust.trust === "verified" ? (
          <span class="verified">{t("deviceVerified")}</span>
        ) : (
          <span class="unverified">{current ? t("thisDeviceUnverified") : t("deviceUnverified")}</span>
        )}
        {!current && trust.trust === "unverified" && (
          <button
            type="button"
            class="small"
            onClick={onVerify}
            data-testid="device-verify"
            aria-label={t("verifyDevice", { device: device.display_name || device.device_id })}
          >
            {t("verify")}
          </button>
        )}
      </span>
    </li>
  );
}
