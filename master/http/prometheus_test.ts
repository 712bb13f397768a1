import assert from "node:assert/strict";
import { formatMetrics } from "./prometheus.ts";
import { parsePrometheus, prometheusPython } from "../../testing/prometheus.ts";

Deno.test("formatMetrics() writes HELP, TYPE and escaped samples", () => {
  const text = formatMetrics([
    {
      name: "drftpd_sessions",
      help: "Open control connections.",
      type: "gauge",
      samples: [{ value: 2 }],
    },
    {
      name: "drftpd_logins_total",
      help: "Login attempts\nby result \\ outcome.",
      type: "counter",
      samples: [
        { labels: { result: "ok" }, value: 3 },
        { labels: { result: 'a"b\\c\nd' }, value: 0 },
      ],
    },
    {
      name: "drftpd_x",
      help: "Odd values.",
      type: "gauge",
      samples: [{ value: NaN }, { value: Infinity }],
    },
  ]);
  assert.equal(
    text,
    [
      "# HELP drftpd_sessions Open control connections.",
      "# TYPE drftpd_sessions gauge",
      "drftpd_sessions 2",
      "# HELP drftpd_logins_total Login attempts\\nby result \\\\ outcome.",
      "# TYPE drftpd_logins_total counter",
      'drftpd_logins_total{result="ok"} 3',
      'drftpd_logins_total{result="a\\"b\\\\c\\nd"} 0',
      "# HELP drftpd_x Odd values.",
      "# TYPE drftpd_x gauge",
      "drftpd_x NaN",
      "drftpd_x +Inf",
      "",
    ].join("\n"),
  );
});

Deno.test("formatMetrics() refuses invalid names", () => {
  assert.throws(
    () => formatMetrics([{ name: "drftpd-x", help: "", type: "gauge", samples: [] }]),
    /Invalid metric name "drftpd-x"/,
  );
  assert.throws(
    () =>
      formatMetrics([{
        name: "drftpd_x",
        help: "",
        type: "gauge",
        samples: [{ labels: { "bad-label": "v" }, value: 1 }],
      }]),
    /Invalid label name "bad-label"/,
  );
});

Deno.test({
  name: "formatMetrics() output parses with python3-prometheus-client",
  ignore: prometheusPython() === null,
  async fn() {
    const text = formatMetrics([
      {
        name: "drftpd_transfer_bytes_total",
        help: 'Bytes "moved"\nby route.',
        type: "counter",
        samples: [{ labels: { direction: "upload", path: 'we"ird\\' }, value: 1234 }],
      },
    ]);
    assert.deepEqual(await parsePrometheus(text), [{
      family: "drftpd_transfer_bytes",
      type: "counter",
      name: "drftpd_transfer_bytes_total",
      labels: { direction: "upload", path: 'we"ird\\' },
      value: 1234,
    }]);
  },
});
