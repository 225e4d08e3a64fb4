import { LANGS, lang, setLang, t, type Lang } from "../i18n";

/** The language switcher; `onChange` re-renders the app. */
export function LangSelect({ onChange }: { onChange: () => void }) {
  return (
    <label class="lang">
      <span class="visually-hidden">{t("language")}</span>
      <select
        aria-label={t("language")}
        value={lang()}
        onChange={(e) => {
          setLang((e.target as HTMLSelectElement).value as Lang);
          onChange();
        }}
      >
        {LANGS.map((l) => (
          <option value={l.code} key={l.code}>
            {l.name}
          </option>
        ))}
      </select>
    </label>
  );
}
