// Display helpers: numbers stay strings from the API (exact decimals); these only shorten them for the eye.

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

export function shortSig(sig, keep = 6) {
  if (!sig) return "";
  return sig.length <= keep * 2 + 1 ? sig : `${sig.slice(0, keep)}…${sig.slice(-keep)}`;
}

// "213.555123456" -> "213.5551" (at most `digits` significant decimals, thousands separated).
export function amount(text, digits = 6) {
  if (text === null || text === undefined || text === "") return "—";
  const s = String(text);
  const negative = s.startsWith("-");
  const [whole, frac = ""] = (negative ? s.slice(1) : s).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  let decimals = frac;
  if (whole !== "0" && whole.replace(/^0+/, "").length >= 4) decimals = frac.slice(0, 2);
  else decimals = frac.slice(0, digits);
  decimals = decimals.replace(/0+$/, "");
  return (negative ? "-" : "") + grouped + (decimals ? "." + decimals : "");
}

export function bps(n) {
  if (n === null || n === undefined) return "—";
  return `${(n / 100).toFixed(2)}%`;
}

export function clockTime(iso) {
  if (!iso) return "--:--:--.---";
  return iso.slice(11, 23);
}

export function dateTime(iso) {
  if (!iso) return "";
  return iso.slice(5, 10) + " " + iso.slice(11, 19);
}

export function since(startMs, endMs) {
  const s = Math.max(0, (endMs - startMs) / 1000);
  return s < 10 ? `${s.toFixed(2)}s` : `${s.toFixed(1)}s`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
