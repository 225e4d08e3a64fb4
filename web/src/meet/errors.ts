import { t } from "../i18n";
import { MeetError } from "./api";

/** A Ward error in plain words (the server's own messages are English and technical). */
export function explain(e: unknown): string {
  if (e instanceof MeetError) {
    const msg = e.message.toLowerCase();
    if (e.status === 0) return t("meetOffline");
    if (e.status === 503) return t("meetNoConferencing");
    if (e.errcode === "M_LIMIT_EXCEEDED") return t("meetTooMany");
    if (msg.includes("consultation is in progress")) return t("consultationInProgress");
    if (msg.includes("to hand over")) return t("handOverNoSession");
    if (msg.includes("only the doctor in the consultation")) return t("handOverNotHolder");
    if (msg.includes("may not moderate")) return t("handOverNotColleague");
    if (msg.includes("locked")) return t("meetLocked");
    if (msg.includes("pin is wrong")) return t("meetWrongPin");
    if (msg.includes("needs a pin")) return t("meetNeedsPin");
    if (msg.includes("already waiting")) return t("patientLinkInUse");
    if (msg.includes("patient link only")) return t("consultationByLinkOnly");
    if (e.status === 409 && msg.includes("patient")) return t("onePatientAtATime");
    if (msg.includes("not started yet")) return t("patientTooEarly");
    if (msg.includes("expired") || msg.includes("used") || msg.includes("slot") || msg.includes("unknown link"))
      return t("patientLinkInvalid");
    if (e.status === 404) return t("meetGone");
    if (e.errcode === "M_INVALID_PARAM") return t("meetInvalidInput", { message: e.message });
  }
  return t("unexpectedError", { message: e instanceof Error ? e.message : String(e) });
}

