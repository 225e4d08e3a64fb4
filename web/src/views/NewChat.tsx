import { useState } from "preact/hooks";
import { MatrixClient } from "matrix-js-sdk";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { describeError } from "../matrix";
import { closeDialog, go } from "../route";
import { createDirect, createGroup, findDirect } from "../rooms";
import { Dialog } from "./Dialog";
import { UserPicker, type Hit } from "./UserPicker";

/** Start a DM (pick one colleague) or a group (a name and several colleagues); both encrypted. */
export function NewChat({ client }: { client: MatrixClient }) {
  const [group, setGroup] = useState(false);
  const [name, setName] = useState("");
  const [members, setMembers] = useState<Hit[]>([]);
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function create(make: () => Promise<string>) {
    setCreating(true);
    setError(null);
    try {
      go({ name: "room", roomId: await make() });
    } catch (e) {
      setError(describeError(e));
      setCreating(false);
    }
  }

  function pick(hit: Hit) {
    if (group) {
      setMembers((m) => (m.some((x) => x.user_id === hit.user_id) ? m : [...m, hit]));
      return;
    }
    const existing = findDirect(client, hit.user_id);
    if (existing) go({ name: "room", roomId: existing.roomId });
    else create(() => createDirect(client, hit.user_id));
  }

  return (
    <Dialog title={t("newChatTitle")} onClose={closeDialog}>
      <div class="row" role="radiogroup" aria-label={t("newChatTitle")}>
        <button type="button" role="radio" aria-checked={!group} class={!group ? "primary" : ""} onClick={() => setGroup(false)}>
          {t("directChat")}
        </button>
        <button
          type="button"
          role="radio"
          aria-checked={group}
          class={group ? "primary" : ""}
          onClick={() => setGroup(true)}
          data-testid="group-mode"
        >
          {t("groupChat")}
        </button>
      </div>
      {group && (
        <>
          <label for="group-name">{t("groupName")}</label>
          <input id="group-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          {members.length > 0 && (
            <ul class="chips" aria-label={t("members")}>
              {members.map((m) => (
                <li key={m.user_id}>
                  <button
                    type="button"
                    class="chip"
                    aria-label={t("removeMember", { user: m.display_name || m.user_id })}
                    onClick={() => setMembers(members.filter((x) => x.user_id !== m.user_id))}
                  >
                    {m.display_name || m.user_id} ×
                  </button>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
      <UserPicker
        client={client}
        disabled={creating}
        exclude={members.map((m) => m.user_id)}
        onPick={pick}
        pickLabel={(user) => (group ? t("addMember", { user }) : t("startChat", { user }))}
      />
      {group && (
        <p class="row">
          <button
            type="button"
            class="primary"
            disabled={creating || !name.trim() || members.length === 0}
            onClick={() => create(() => createGroup(client, name.trim(), members.map((m) => m.user_id)))}
            data-testid="create-group"
          >
            {t("createGroup")}
          </button>
        </p>
      )}
      {creating && <Spinner label={t("creatingRoom")} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}
