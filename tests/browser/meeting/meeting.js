// The meeting test page (see index.html): joins the conference named in the token, publishes
// camera and microphone, shows every remote video, and exposes its state for the test driver
// (tests/browser/meeting.mjs) as `window.meeting`:
//   await meeting.ready        — resolves once connected and publishing (rejects on failure)
//   await meeting.snapshot()   — participants, remote tracks with their decoder statistics, and
//                                the ICE candidate pairs of every peer connection
//   await meeting.shareScreen() — starts a screen share (getDisplayMedia)
// Fragment parameters: token, name; `transport=tcp` (below); `publish=none` (watch only);
// `layout=large` (remote videos at 1280×720, so adaptive stream asks for the top layer).

import { Room, RoomEvent, Track } from "./livekit-client.esm.mjs";

const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token");
const name = params.get("name") || "?";
const $ = (id) => document.getElementById(id);

// Keep every peer connection livekit-client makes, so that the test can check where media goes.
const peerConnections = [];
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(...args) {
    super(...args);
    peerConnections.push(this);
  }
};

// `#…&transport=tcp`: this page behaves as if UDP were blocked (a hospital guest network): the
// SFU's UDP candidates never reach the browser's ICE agent, so media must take ICE-TCP.
if (params.get("transport") === "tcp") {
  const isUdp = (line) => /^(a=)?candidate:\S+ \d+ udp /i.test(line);
  const { setRemoteDescription, addIceCandidate } = NativePeerConnection.prototype;
  NativePeerConnection.prototype.setRemoteDescription = function (description) {
    if (!description?.sdp) return setRemoteDescription.call(this, description);
    const sdp = description.sdp.split("\r\n").filter((line) => !isUdp(line)).join("\r\n");
    return setRemoteDescription.call(this, { type: description.type, sdp });
  };
  NativePeerConnection.prototype.addIceCandidate = function (candidate) {
    if (candidate?.candidate && isUdp(candidate.candidate)) return Promise.resolve();
    return addIceCandidate.call(this, candidate);
  };
}

if (params.get("layout") === "large") document.documentElement.classList.add("large");

const room = new Room({ adaptiveStream: true, dynacast: true });
const errors = [];

function status(text) {
  $("status").textContent = text;
}

room
  .on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
    const element = track.attach();
    if (track.kind === Track.Kind.Audio) {
      element.hidden = true;
      document.body.append(element);
      return;
    }
    const figure = document.createElement("figure");
    figure.className = publication.source;
    figure.dataset.participant = participant.identity;
    figure.dataset.trackSid = publication.trackSid;
    const caption = document.createElement("figcaption");
    caption.textContent = `${participant.name || participant.identity} (${publication.source})`;
    element.muted = true;
    figure.append(element, caption);
    $("videos").append(figure);
  })
  .on(RoomEvent.TrackUnsubscribed, (track) => {
    for (const element of track.detach()) (element.closest("figure") ?? element).remove();
  })
  .on(RoomEvent.ParticipantConnected, () => status(`${room.remoteParticipants.size + 1} here`))
  .on(RoomEvent.ParticipantDisconnected, () => status(`${room.remoteParticipants.size + 1} here`))
  .on(RoomEvent.Disconnected, (reason) => {
    errors.push(`disconnected: ${reason}`);
    status(`disconnected (${reason})`);
  });

async function start() {
  $("me").textContent = name;
  if (!token) throw new Error("no #token= in the address");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  status("connecting");
  await room.connect(`${scheme}://${location.host}`, token);
  status("publishing");
  if (params.get("publish") !== "none") await room.localParticipant.enableCameraAndMicrophone();
  status(`${room.remoteParticipants.size + 1} here`);
  $("share").disabled = false;
}

const ready = start().catch((e) => {
  errors.push(String(e?.stack || e));
  status(`failed: ${e?.message || e}`);
  throw e;
});
ready.catch(() => {}); // reported through meeting.ready and meeting.snapshot()

async function shareScreen() {
  await room.localParticipant.setScreenShareEnabled(true);
}

$("share").addEventListener("click", () =>
  shareScreen().catch((e) => errors.push(`screen share: ${e?.stack || e}`)),
);

/** The stats objects of one type from a report. */
function ofType(report, type) {
  return report ? [...report.values()].filter((s) => s.type === type) : [];
}

/** What one peer connection's ICE did: the selected pair and every pair that carried traffic. */
async function iceSummary(pc) {
  const report = await pc.getStats();
  const byId = (id) => report.get(id);
  const address = (candidate) => candidate && `${candidate.address}:${candidate.port}/${candidate.protocol}`;
  const pair = (p) => ({
    local: address(byId(p.localCandidateId)),
    remote: address(byId(p.remoteCandidateId)),
    state: p.state,
    bytesSent: p.bytesSent,
    bytesReceived: p.bytesReceived,
    requestsSent: p.requestsSent,
  });
  const transport = ofType(report, "transport")[0];
  const selected = transport?.selectedCandidatePairId && byId(transport.selectedCandidatePairId);
  return {
    connectionState: pc.connectionState,
    selected: selected ? pair(selected) : null,
    pairs: ofType(report, "candidate-pair").map(pair),
    remoteCandidates: ofType(report, "remote-candidate").map(address),
  };
}

async function remoteTrack(participant, publication) {
  const entry = {
    participant: participant.identity,
    trackSid: publication.trackSid,
    kind: publication.kind,
    source: publication.source,
    subscribed: publication.isSubscribed,
  };
  const inbound = ofType(await publication.track?.getRTCStatsReport(), "inbound-rtp")[0];
  if (inbound) {
    // The counters that tell why a picture froze: lost packets (NACKs), frames that arrived but
    // were not decoded, keyframe requests.
    const fields = ["packetsReceived", "packetsLost", "nackCount", "framesReceived", "framesDecoded",
      "framesDropped", "keyFramesDecoded", "pliCount", "firCount", "frameWidth", "frameHeight",
      "totalSamplesReceived", "bytesReceived"];
    for (const f of fields) if (inbound[f] !== undefined) entry[f] = inbound[f];
  }
  return entry;
}

/** The simulcast layers of the own camera as livekit-client set them on the sender (dynacast
 * switches off the layers nobody watches). */
function cameraEncodings() {
  const camera = [...room.localParticipant.videoTrackPublications.values()].find(
    (p) => p.source === Track.Source.Camera,
  );
  const sender = camera?.track?.sender;
  return (sender?.getParameters().encodings ?? []).map((e) => ({ rid: e.rid, active: e.active }));
}

async function snapshot() {
  // One list for both fields: people may come and go during the awaits below.
  const people = [...room.remoteParticipants.values()];
  const remotes = [];
  for (const p of people) {
    for (const publication of p.trackPublications.values()) remotes.push(await remoteTrack(p, publication));
  }
  return {
    identity: room.localParticipant.identity,
    state: room.state,
    errors,
    participants: people.map((p) => p.identity).sort(),
    published: [...room.localParticipant.trackPublications.values()].map((t) => t.source).sort(),
    cameraEncodings: cameraEncodings(),
    remotes,
    ice: await Promise.all(peerConnections.filter((pc) => pc.connectionState !== "closed").map(iceSummary)),
  };
}

window.meeting = { ready, snapshot, shareScreen };
