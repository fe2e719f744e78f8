// The monitoring dashboard: reads /v1/indicators with the user's token and
// draws the four goals as SVG bar charts and tables. No library, no network
// beyond this server: it works offline.
"use strict";

const TOKEN_KEY = "stagepact.token";
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function schoolYearOf(day) {
  const start = day.getMonth() >= 7 ? day.getFullYear() : day.getFullYear() - 1;
  return `${start}-${start + 1}`;
}

function fillSchoolYears() {
  const select = $("school_year");
  const current = Number(schoolYearOf(new Date()).slice(0, 4));
  const options = [["", "all years"]];
  for (let start = current; start > current - 3; start--) {
    options.push([`${start}-${start + 1}`, `${start}-${start + 1}`]);
  }
  select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
}

// Who the token says the user is, for the header only: the server decides
// what the token may read.
function describe(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.org ? `${payload.role} ${payload.org}` : payload.role;
  } catch {
    return "unknown token";
  }
}

function filters() {
  const params = new URLSearchParams();
  for (const name of ["school_year", "school", "region", "qualification", "sector"]) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

const isShown = (count) => typeof count === "number";
const countText = (count) => (isShown(count) ? String(count) : "fewer than 5");
const percent = (share) => `${Math.round(share * 1000) / 10}%`;

// One horizontal bar chart. Each bar: {key, label, value (0..max or null when
// suppressed), text}. Suppressed bars are hatched and say so.
function barChart(container, title, bars, max) {
  const width = 900;
  const rowHeight = 28;
  const labelWidth = 320;
  const height = bars.length * rowHeight + 32;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const heading = document.createElementNS(SVG, "text");
  heading.setAttribute("x", 0);
  heading.setAttribute("y", 18);
  heading.setAttribute("class", "chart-title");
  heading.textContent = title;
  svg.append(heading);
  // Room right of the longest bar for its value text.
  const scale = max > 0 ? (width - labelWidth - 300) / max : 0;
  bars.forEach((bar, index) => {
    const y = 32 + index * rowHeight;
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", 0);
    label.setAttribute("y", y + 17);
    label.textContent = bar.label;
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", labelWidth);
    rect.setAttribute("y", y + 4);
    rect.setAttribute("height", rowHeight - 8);
    rect.setAttribute("data-key", bar.key);
    if (bar.value === null) {
      rect.setAttribute("width", 40);
      rect.setAttribute("class", "bar suppressed");
      rect.setAttribute("data-value", "suppressed");
    } else {
      rect.setAttribute("width", Math.max(1, bar.value * scale));
      rect.setAttribute("class", "bar");
      rect.setAttribute("data-value", String(bar.value));
    }
    const value = document.createElementNS(SVG, "text");
    value.setAttribute("x", labelWidth + (bar.value === null ? 40 : Math.max(1, bar.value * scale)) + 6);
    value.setAttribute("y", y + 17);
    value.setAttribute("class", "value");
    value.textContent = bar.text;
    svg.append(label, rect, value);
  });
  if (bars.length === 0) {
    const empty = document.createElementNS(SVG, "text");
    empty.setAttribute("x", 0);
    empty.setAttribute("y", 48);
    empty.textContent = "nothing counted yet";
    svg.append(empty);
  }
  container.replaceChildren(svg);
}

function shareBar(key, label, share) {
  if (!isShown(share.count) || !isShown(share.of)) {
    return { key, label, value: null, text: "suppressed (fewer than 5)" };
  }
  if (share.share === undefined) {
    return { key, label, value: 0, text: `${share.count} of ${share.of}` };
  }
  return { key, label, value: share.share, text: `${percent(share.share)} (${share.count} of ${share.of})` };
}

function countBars(cells) {
  return cells.map((cell) => ({
    key: cell.key,
    label: cell.key.replace(/_/g, " "),
    value: isShown(cell.count) ? cell.count : null,
    text: countText(cell.count),
  }));
}

function maxOf(bars) {
  return Math.max(1, ...bars.map((bar) => bar.value ?? 0));
}

function table(element, head, rows) {
  const header = document.createElement("tr");
  header.append(...head.map((text) => Object.assign(document.createElement("th"), { textContent: text })));
  const body = rows.map((cells) => {
    const row = document.createElement("tr");
    row.append(...cells.map((text) => Object.assign(document.createElement("td"), { textContent: text })));
    return row;
  });
  element.replaceChildren(header, ...body);
}

function chart(name) {
  return document.querySelector(`[data-chart="${name}"]`);
}

function render(view) {
  const g = view.guidance;
  barChart(chart("guidance"), `Guidance (${countText(g.rated)} placements rated)`, [
    shareBar("satisfied_with_school", "Satisfied with school", g.satisfied_with_school),
    shareBar("satisfied_with_company", "Satisfied with company", g.satisfied_with_company),
    shareBar("contact_moments_compliant", "Contact moments (G2)", g.contact_moments_compliant),
    shareBar("warm_handover", "Warm handover (G3)", g.warm_handover),
  ], 1);

  const d = view.discrimination;
  barChart(chart("discrimination-shares"), `Reports (${countText(d.reports)})`, [
    shareBar("followed_up_in_time", `Followed up within ${d.follow_up_working_days} working days`, d.followed_up_in_time),
  ], 1);
  const kinds = countBars(d.by_kind);
  barChart(chart("reports-by-kind"), "Reports by kind", kinds, maxOf(kinds));
  const grounds = countBars(d.by_ground);
  barChart(chart("reports-by-ground"), "Grounds named (D2)", grounds, maxOf(grounds));
  table(document.querySelector('[data-table="discrimination"]'), ["Figure", "Count"], [
    ["Signals forwarded to SBB", countText(d.signals_forwarded)],
    ["Escalated to SBB", countText(d.escalated)],
    ["Investigations", countText(d.investigations)],
    ["Suspensions", countText(d.suspensions)],
    ["Revocations", countText(d.revocations)],
  ]);

  const p = view.placements;
  barChart(chart("placements"), `Students seeking a placement (${countText(p.students_seeking)})`, [
    shareBar("without_placement", "Without a placement", p.without_placement),
    shareBar("first_year_bol_matched", "First-year BOL matched (M2)", p.first_year_bol_matched),
    shareBar("companies_opted_out", "Companies opted out (M4)", p.companies_opted_out),
  ], 1);
  table(document.querySelector('[data-table="supply-demand"]'),
    ["Qualification", "Region", "Seeking", "Open slots", "Slots per student", "Shortage"],
    p.supply_demand.map((row) => [
      row.qualification, row.region, countText(row.seeking), String(row.open_slots),
      row.ratio === undefined ? "–" : String(row.ratio), row.shortage ? "yes" : "no",
    ]));

  const c = view.compensation;
  barChart(chart("compensation"), "Compensation", [
    shareBar("with_internship_allowance", "BOL with an internship allowance (C2)", c.with_internship_allowance),
    shareBar("bbl_wage_compliant", "BBL at or above minimum wage (C3)", c.bbl_wage_compliant),
  ], 1);
  for (const [name, groups, title] of [
    ["allowance-by-level", c.allowance_by_level, "Median allowance per month, by level"],
    ["allowance-by-pathway", c.allowance_by_pathway, "Median allowance per month, by pathway"],
  ]) {
    const bars = groups.map((group) => ({
      key: group.group,
      label: name.endsWith("level") ? `Level ${group.group}` : group.group.toUpperCase(),
      value: group.median_eur_per_month ?? null,
      text: group.median_eur_per_month === undefined
        ? "suppressed (fewer than 5)"
        : `€${group.median_eur_per_month.toFixed(2)} (mean €${group.mean_eur_per_month.toFixed(2)}, ${group.agreements})`,
    }));
    barChart(chart(name), title, bars, maxOf(bars));
  }

  const suppression = $("suppression");
  suppression.hidden = view.suppressed_below === undefined;
  suppression.textContent = `Counts of 1 to ${view.suppressed_below - 1} are shown as suppressed.`;
}

async function load() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const status = $("status");
  status.textContent = "Loading…";
  document.body.dataset.state = "loading";
  try {
    const response = await fetch(`/v1/indicators?${filters()}`, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    const body = await response.json();
    if (!response.ok) {
      status.textContent = `${body.title}: ${body.detail ?? ""}`;
      document.body.dataset.state = "error";
      if (response.status === 401) logout();
      return;
    }
    render(body);
    status.textContent = `As of log position ${body.as_of_position}.`;
    document.body.dataset.state = "ready";
    // Tells a watcher (the browser test, a screen reader's live region) that
    // a new answer is drawn.
    document.body.dataset.loads = String(Number(document.body.dataset.loads ?? 0) + 1);
  } catch (error) {
    status.textContent = `The indicators could not be loaded: ${error}`;
    document.body.dataset.state = "error";
  }
}

function show() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const signedIn = Boolean(token);
  $("login").hidden = signedIn;
  $("dashboard").hidden = !signedIn;
  $("who").hidden = !signedIn;
  if (signedIn) {
    $("who").textContent = `Signed in as ${describe(token)}`;
    load();
  }
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  show();
}

document.addEventListener("DOMContentLoaded", () => {
  fillSchoolYears();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    show();
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("school_year").addEventListener("change", load);
  $("logout").addEventListener("click", logout);
  show();
});
