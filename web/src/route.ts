// Hash-based routing, so that Ward serves one index.html and needs no SPA fallback:
//   #/login   #/register?token=…   #/   #/room/<room id>   #/new   #/invite   #/security   #/settings
//   #/meetings (meeting links `#/meet/…` and `#/patient/…` are the meeting page, see main.tsx)
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { name: "login" }
  | { name: "register"; token: string | null }
  | { name: "home" }
  | { name: "room"; roomId: string }
  | { name: "new" }
  | { name: "invite" }
  | { name: "security" }
  | { name: "settings" }
  | { name: "meetings" };

export function parse(hash: string): Route {
  const h = hash.replace(/^#/, "");
  const [path, query = ""] = h.split("?", 2);
  const params = new URLSearchParams(query);
  if (path === "/login") return { name: "login" };
  if (path === "/register") return { name: "register", token: params.get("token") };
  if (path === "/new") return { name: "new" };
  if (path === "/invite") return { name: "invite" };
  if (path === "/security") return { name: "security" };
  if (path === "/settings") return { name: "settings" };
  if (path === "/meetings") return { name: "meetings" };
  const room = path.match(/^\/room\/(.+)$/);
  if (room) {
    try {
      return { name: "room", roomId: decodeURIComponent(room[1]) };
    } catch {
      return { name: "home" };
    }
  }
  return { name: "home" };
}

export function href(r: Route): string {
  switch (r.name) {
    case "room":
      return `#/room/${encodeURIComponent(r.roomId)}`;
    case "register":
      return r.token ? `#/register?token=${encodeURIComponent(r.token)}` : "#/register";
    case "home":
      return "#/";
    default:
      return `#/${r.name}`;
  }
}

export function go(r: Route): void {
  window.location.hash = href(r);
}

/** The last route that was not a dialog (new chat, invite, key backup): where dialogs return to. */
let behindDialog: Route = { name: "home" };

function isDialog(r: Route): boolean {
  return r.name === "new" || r.name === "invite" || r.name === "security" || r.name === "settings" || r.name === "meetings";
}

/** The screen to show: for a dialog route, the chat (or list) that stays open under it. */
export function screenOf(r: Route): Route {
  return isDialog(r) ? behindDialog : r;
}

/** Closes a dialog: back to the chat (or list) that was open under it. */
export function closeDialog(): void {
  go(behindDialog);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(window.location.hash));
  if (!isDialog(route)) behindDialog = route;
  useEffect(() => {
    const on = () => setRoute(parse(window.location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}
