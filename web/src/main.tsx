import { render } from "preact";
import "./style.css";

// Meeting, patient and hand-over links (`#/meet/…`, `#/patient/…`, `#/handover/…`) open the
// meeting page, which needs no account and loads neither matrix-js-sdk nor the chat; everything
// else is the chat app. Moving between the two (a meeting link clicked in a chat, "back to the
// chats" after a meeting) reloads the page, which also ends a call cleanly.
const isMeet = (hash: string) => /^#\/(meet|patient|handover)\//.test(hash);
const meeting = isMeet(location.hash);
window.addEventListener("hashchange", () => {
  if (meeting || isMeet(location.hash)) location.reload();
});

const root = document.getElementById("app")!;
root.textContent = ""; // the "Ward …" shown while loading
if (meeting) {
  import("./meet/MeetPage").then(({ MeetPage, meetRouteFromAddress }) => {
    const route = meetRouteFromAddress();
    render(route ? <MeetPage route={route} /> : <p class="boot">Ward</p>, root);
  });
} else {
  Promise.all([import("./App"), import("./matrix")]).then(([{ App }, { wipeLeftovers }]) =>
    wipeLeftovers().finally(() => render(<App />, root)),
  );
}
