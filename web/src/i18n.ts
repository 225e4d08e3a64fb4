// The app's strings in German and English. The language comes from the browser
// (navigator.languages) unless the user picked one; the choice is kept in localStorage.
// Keep both dictionaries in step: `Dict` is derived from English, German must match it.

const en = {
  appName: "Ward",
  loading: "Loading…",
  language: "Language",
  // Login
  loginTitle: "Sign in",
  username: "Username",
  password: "Password",
  signIn: "Sign in",
  signingIn: "Signing in…",
  wrongPassword: "Wrong username or password.",
  serverUnreachable: "The server cannot be reached. Check the connection and try again.",
  tooManyAttempts: "Too many attempts. Please wait a moment and try again.",
  deactivated: "This account has been deactivated.",
  unexpectedError: "Something went wrong: {message}",
  noAccountHint: "No account yet? Ask your practice's administrator for an invite link.",
  // Registration
  registerTitle: "Create your account",
  registerIntro: "You were invited to your practice's chat. Choose a username and a password.",
  confirmPassword: "Repeat password",
  createAccount: "Create account",
  creatingAccount: "Creating account…",
  passwordsDiffer: "The passwords do not match.",
  usernameTaken: "This username is taken. Please choose another.",
  usernameInvalid: "Usernames may contain only lower-case letters, digits and . _ = - /",
  passwordWeak: "This password is too weak. Please choose a longer one.",
  inviteInvalid: "This invite link is invalid, expired or already used. Ask for a new one.",
  inviteMissing: "This page needs an invite link. Ask your practice's administrator for one.",
  registrationClosed: "Sign-up is not possible on this server.",
  toSignIn: "Back to sign in",
  // Main
  chats: "Chats",
  signOut: "Sign out",
  signedInAs: "Signed in as {user}",
  newChat: "New chat",
  inviteColleague: "Invite colleague",
  noRooms: "No chats yet. Start one with “New chat”.",
  invitation: "Invitation",
  invitedBy: "{user} invited you",
  accept: "Accept",
  decline: "Decline",
  unread: "{count} unread",
  encrypted: "End-to-end encrypted",
  notEncrypted: "Not encrypted",
  selectRoom: "Select a chat.",
  back: "Back",
  close: "Close",
  // Timeline
  message: "Message",
  send: "Send",
  loadOlder: "Load older messages",
  loadingOlder: "Loading older messages…",
  beginning: "This is the beginning of the chat.",
  unableToDecrypt: "Unable to decrypt this message yet.",
  typingOne: "{user} is typing…",
  typingMany: "Several people are typing…",
  readBy: "Read by {users}",
  sendFailed: "Not sent: {message}",
  edit: "Edit",
  editMessage: "Edit message",
  editing: "Editing message",
  cancel: "Cancel",
  edited: "(edited)",
  delete: "Delete",
  deleteMessage: "Delete message",
  confirmDelete: "Delete this message for everyone?",
  deleted: "Message deleted",
  save: "Save",
  attach: "Attach file or image",
  signingOut: "Signing out – saving keys to the backup…",
  security: "Key backup",
  securityTitle: "Key backup and recovery key",
  backupOn: "Key backup is on. Your encrypted messages can be restored on a new browser with your recovery key.",
  backupNone: "Key backup is off. Without it, a new browser cannot read earlier encrypted messages.",
  backupSetUp: "Set up key backup",
  settingUp: "Setting up…",
  passwordToConfirm: "Your password (to confirm)",
  recoveryKey: "Recovery key",
  recoveryKeyIntro: "Write this recovery key down and keep it safe, e.g. in the practice safe. Anyone with it can read your encrypted messages; without it, they are lost on a new browser.",
  recoveryKeyDone: "I have written it down",
  backupRestorable: "There is a key backup. Enter your recovery key to read earlier encrypted messages in this browser.",
  restore: "Restore",
  restoring: "Restoring…",
  restored: "{count} keys restored.",
  wrongRecoveryKey: "This recovery key is not correct.",
  uploading: "Uploading {name}…",
  fileTooLarge: "This file is too large for the server.",
  download: "Download {name}",
  attachmentFailed: "The attachment could not be loaded.",
  joined: "{user} joined",
  invited: "{user} invited {target}",
  left: "{user} left",
  createdRoom: "{user} created the chat",
  emptyRoom: "Empty chat",
  wasNamed: "Empty chat (was {name})",
  nameTwo: "{a} and {b}",
  nameMany: "{a} and {count} others",
  nameOneOther: "{a} and 1 other",
  inviting: "Inviting {names}",
  // New DM
  newChatTitle: "Start a chat",
  searchColleague: "Search colleagues",
  searchHint: "Type a name or username.",
  noResults: "Nobody found.",
  startChat: "Chat with {user}",
  creatingRoom: "Creating the chat…",
  // Invite links
  inviteTitle: "Invite a colleague",
  inviteIntro: "Create a link that lets one colleague create an account. Send it to them in person or over a safe channel.",
  createLink: "Create invite link",
  creatingLink: "Creating link…",
  inviteLink: "Invite link",
  copy: "Copy",
  copied: "Copied",
};

export type Key = keyof typeof en;
type Dict = Record<Key, string>;

const de: Dict = {
  appName: "Ward",
  loading: "Wird geladen …",
  language: "Sprache",
  loginTitle: "Anmelden",
  username: "Benutzername",
  password: "Passwort",
  signIn: "Anmelden",
  signingIn: "Anmeldung läuft …",
  wrongPassword: "Benutzername oder Passwort ist falsch.",
  serverUnreachable: "Der Server ist nicht erreichbar. Bitte Verbindung prüfen und erneut versuchen.",
  tooManyAttempts: "Zu viele Versuche. Bitte einen Moment warten und erneut versuchen.",
  deactivated: "Dieses Konto wurde deaktiviert.",
  unexpectedError: "Etwas ist schiefgegangen: {message}",
  noAccountHint: "Noch kein Konto? Bitten Sie die Administration Ihrer Praxis um einen Einladungslink.",
  registerTitle: "Konto anlegen",
  registerIntro: "Sie wurden in den Chat Ihrer Praxis eingeladen. Wählen Sie einen Benutzernamen und ein Passwort.",
  confirmPassword: "Passwort wiederholen",
  createAccount: "Konto anlegen",
  creatingAccount: "Konto wird angelegt …",
  passwordsDiffer: "Die Passwörter stimmen nicht überein.",
  usernameTaken: "Dieser Benutzername ist vergeben. Bitte einen anderen wählen.",
  usernameInvalid: "Benutzernamen dürfen nur Kleinbuchstaben, Ziffern und . _ = - / enthalten.",
  passwordWeak: "Dieses Passwort ist zu schwach. Bitte ein längeres wählen.",
  inviteInvalid: "Dieser Einladungslink ist ungültig, abgelaufen oder schon benutzt. Bitte um einen neuen bitten.",
  inviteMissing: "Diese Seite braucht einen Einladungslink. Bitte die Administration Ihrer Praxis darum bitten.",
  registrationClosed: "Auf diesem Server ist keine Registrierung möglich.",
  toSignIn: "Zurück zur Anmeldung",
  chats: "Chats",
  signOut: "Abmelden",
  signedInAs: "Angemeldet als {user}",
  newChat: "Neuer Chat",
  inviteColleague: "Kollegin/Kollegen einladen",
  noRooms: "Noch keine Chats. Mit „Neuer Chat“ einen beginnen.",
  invitation: "Einladung",
  invitedBy: "{user} hat Sie eingeladen",
  accept: "Annehmen",
  decline: "Ablehnen",
  unread: "{count} ungelesen",
  encrypted: "Ende-zu-Ende-verschlüsselt",
  notEncrypted: "Nicht verschlüsselt",
  selectRoom: "Bitte einen Chat auswählen.",
  back: "Zurück",
  close: "Schließen",
  message: "Nachricht",
  send: "Senden",
  loadOlder: "Ältere Nachrichten laden",
  loadingOlder: "Ältere Nachrichten werden geladen …",
  beginning: "Hier beginnt der Chat.",
  unableToDecrypt: "Diese Nachricht kann noch nicht entschlüsselt werden.",
  typingOne: "{user} schreibt …",
  typingMany: "Mehrere Personen schreiben …",
  readBy: "Gelesen von {users}",
  sendFailed: "Nicht gesendet: {message}",
  edit: "Bearbeiten",
  editMessage: "Nachricht bearbeiten",
  editing: "Nachricht wird bearbeitet",
  cancel: "Abbrechen",
  edited: "(bearbeitet)",
  delete: "Löschen",
  deleteMessage: "Nachricht löschen",
  confirmDelete: "Diese Nachricht für alle löschen?",
  deleted: "Nachricht gelöscht",
  save: "Speichern",
  attach: "Datei oder Bild anhängen",
  signingOut: "Abmeldung – Schlüssel werden gesichert …",
  security: "Schlüsselsicherung",
  securityTitle: "Schlüsselsicherung und Wiederherstellungsschlüssel",
  backupOn: "Die Schlüsselsicherung ist an. Mit Ihrem Wiederherstellungsschlüssel können Sie verschlüsselte Nachrichten in einem neuen Browser wieder lesen.",
  backupNone: "Die Schlüsselsicherung ist aus. Ohne sie kann ein neuer Browser frühere verschlüsselte Nachrichten nicht lesen.",
  backupSetUp: "Schlüsselsicherung einrichten",
  settingUp: "Wird eingerichtet …",
  passwordToConfirm: "Ihr Passwort (zur Bestätigung)",
  recoveryKey: "Wiederherstellungsschlüssel",
  recoveryKeyIntro: "Schreiben Sie diesen Wiederherstellungsschlüssel auf und bewahren Sie ihn sicher auf, z. B. im Praxistresor. Wer ihn hat, kann Ihre verschlüsselten Nachrichten lesen; ohne ihn sind sie in einem neuen Browser verloren.",
  recoveryKeyDone: "Ich habe ihn aufgeschrieben",
  backupRestorable: "Es gibt eine Schlüsselsicherung. Geben Sie Ihren Wiederherstellungsschlüssel ein, um frühere verschlüsselte Nachrichten in diesem Browser zu lesen.",
  restore: "Wiederherstellen",
  restoring: "Wird wiederhergestellt …",
  restored: "{count} Schlüssel wiederhergestellt.",
  wrongRecoveryKey: "Dieser Wiederherstellungsschlüssel ist nicht richtig.",
  uploading: "{name} wird hochgeladen …",
  fileTooLarge: "Diese Datei ist zu groß für den Server.",
  download: "{name} herunterladen",
  attachmentFailed: "Der Anhang konnte nicht geladen werden.",
  joined: "{user} ist beigetreten",
  invited: "{user} hat {target} eingeladen",
  left: "{user} hat den Chat verlassen",
  createdRoom: "{user} hat den Chat erstellt",
  emptyRoom: "Leerer Chat",
  wasNamed: "Leerer Chat (war {name})",
  nameTwo: "{a} und {b}",
  nameMany: "{a} und {count} weitere",
  nameOneOther: "{a} und 1 weitere Person",
  inviting: "Einladung an {names}",
  newChatTitle: "Chat beginnen",
  searchColleague: "Kolleginnen und Kollegen suchen",
  searchHint: "Namen oder Benutzernamen eingeben.",
  noResults: "Niemand gefunden.",
  startChat: "Chat mit {user}",
  creatingRoom: "Chat wird erstellt …",
  inviteTitle: "Kollegin/Kollegen einladen",
  inviteIntro: "Erstellen Sie einen Link, mit dem eine Person ein Konto anlegen kann. Geben Sie ihn persönlich oder über einen sicheren Weg weiter.",
  createLink: "Einladungslink erstellen",
  creatingLink: "Link wird erstellt …",
  inviteLink: "Einladungslink",
  copy: "Kopieren",
  copied: "Kopiert",
};

export type Lang = "de" | "en";
export const LANGS: { code: Lang; name: string }[] = [
  { code: "de", name: "Deutsch" },
  { code: "en", name: "English" },
];
const DICTS: Record<Lang, Dict> = { de, en };
const STORAGE_KEY = "ward.lang";

function detect(): Lang {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "de" || saved === "en") return saved;
  for (const l of navigator.languages ?? [navigator.language]) {
    const code = l.toLowerCase().slice(0, 2);
    if (code === "de" || code === "en") return code;
  }
  return "en";
}

let current: Lang = detect();
document.documentElement.lang = current;

export function lang(): Lang {
  return current;
}

/** Switches the language and remembers the choice; the caller re-renders. */
export function setLang(l: Lang): void {
  current = l;
  localStorage.setItem(STORAGE_KEY, l);
  document.documentElement.lang = l;
}

/** The string for `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: Key, params: Record<string, string | number> = {}): string {
  return DICTS[current][key].replace(/\{(\w+)\}/g, (m, name: string) =>
    name in params ? String(params[name]) : m,
  );
}
