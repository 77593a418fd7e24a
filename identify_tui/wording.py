"""Sentences the command line and the terminal UI both say (plain data in, text out; no
engine, no Textual)."""

from __future__ import annotations

from server import contract


def threshold_advice(advice: contract.ThresholdAdvice | None) -> str | None:
    """The thresholds the reviewed answers recommend, beside those in force."""
    if advice is None or advice["reviewed"] is None:
        return None
    now = "-" if advice["current_reviewed"] is None else f"{advice['current_reviewed']:.2f}"
    same = (
        advice["threshold"] == advice["current_threshold"]
        and advice["margin"] == advice["current_margin"]
    )
    if same and advice["gain"] > 0:
        head = (
            "thresholds from reviews: keep the ones in force (another pair would gain "
            f"{100 * advice['gain']:.0f} points, within the noise of these reviews)"
        )
    elif same:
        head = "thresholds from reviews: the ones in force are best"
    else:
        head = (
            f"thresholds from reviews: score >= {advice['threshold']:.2f}, "
            f"margin >= {advice['margin']:.2f} (+{100 * advice['gain']:.0f} points, at "
            f"least +{100 * advice['gain_low']:.0f})"
        )
    return (
        f"{head}: reviewed {advice['reviewed']:.2f} (95 % {advice['low']:.2f}-"
        f"{advice['high']:.2f}, {advice['reviews']} reviews); in force score >= "
        f"{advice['current_threshold']:.2f}, margin >= {advice['current_margin']:.2f}: {now}"
    )


def outreach_notice(health: contract.Health) -> str | None:
    """What a banner says of the alerts raised and the webhooks in trouble (None: all
    is well)."""
    lines = [f"ALERT {a['name'].replace('_', ' ')}: {a['message']}" for a in health["alerts"]]
    for hook in health["webhooks"]:
        if hook["state"] == "no_secret":
            lines.append(f"webhook {hook['name']}: its secret is not set; events wait")
        elif hook["dead_letters"]:
            lines.append(
                f"webhook {hook['name']}: {hook['dead_letters']} event(s) not delivered "
                "(Stats: w re-sends)"
            )
        elif hook["attempts"]:
            lines.append(
                f"webhook {hook['name']}: retrying ({hook['attempts']} failed): "
                f"{hook['last_error']}"
            )
    return "\n".join(lines) or None


def webhook_line(hook: contract.WebhookStatus) -> str:
    """One webhook as the Stats screen lists it."""
    line = (
        f"webhook {hook['name']} ({hook['url']}): {hook['state']}, {hook['delivered']} "
        f"delivered, {hook['waiting']} waiting, {hook['dead_letters']} dead letter(s)"
    )
    if hook["last_error"]:
        line += f"; last error: {hook['last_error']}"
    return line
