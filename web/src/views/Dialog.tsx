import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef } from "preact/hooks";
import { t } from "../i18n";

/** What Tab can reach inside a dialog. */
const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal dialog: the native `<dialog>` opened with `showModal()`, so the page behind it is inert
 * and the browser handles Escape. Tab and Shift-Tab wrap around inside it (without this, focus
 * would leave for the browser's own controls after the last element); on closing, focus goes
 * back to the element that had it before (the button or link that opened the dialog).
 * `onClose` runs for Escape and the close button; the caller then stops rendering the dialog,
 * or returns `false` to keep it open (e.g. until a recovery key has been written down).
 */
export function Dialog({
  title,
  onClose,
  children,
}: {
  title: string;
  onClose: () => void | boolean;
  children: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const closeRef = useRef(onClose);
  closeRef.current = onClose;

  useLayoutEffect(() => {
    const dialog = ref.current!;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    dialog.showModal();
    // Escape: the browser fires `cancel`; the caller decides (and unmounts the dialog).
    const onCancel = (e: Event) => {
      e.preventDefault();
      closeRef.current();
    };
    // The browser may close it without a cancelable `cancel` (repeated Escape): follow it,
    // unless the caller refuses — then it opens again.
    const onClosed = () => {
      if (closeRef.current() === false && !dialog.open && dialog.isConnected) dialog.showModal();
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== "Tab") return;
      const items = Array.from(dialog.querySelectorAll<HTMLElement>(FOCUSABLE)).filter(
        (el) => el.getClientRects().length > 0,
      );
      if (items.length === 0) return;
      const first = items[0];
      const last = items[items.length - 1];
      const active = document.activeElement;
      if (e.shiftKey && (active === first || !dialog.contains(active))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (active === last || !dialog.contains(active))) {
        e.preventDefault();
        first.focus();
      }
    };
    dialog.addEventListener("cancel", onCancel);
    dialog.addEventListener("close", onClosed);
    dialog.addEventListener("keydown", onKey);
    return () => {
      dialog.removeEventListener("cancel", onCancel);
      dialog.removeEventListener("close", onClosed);
      dialog.removeEventListener("keydown", onKey);
      if (dialog.open) dialog.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);

  const titleId = useRef(`dialog-title-${Math.random().toString(36).slice(2)}`).current;
  return (
    <dialog ref={ref} class="dialog" aria-labelledby={titleId}>
      <header>
        <h2 id={titleId}>{title}</h2>
        <button type="button" class="plain" onClick={() => closeRef.current()}>
          {t("close")}
        </button>
      </header>
      {children}
    </dialog>
  );
}
