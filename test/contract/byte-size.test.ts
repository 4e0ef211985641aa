import { describe, expect, test } from "bun:test";
import { formatBytes, parseByteSize } from "../../contract/byte-size.js";

describe("byte sizes", () => {
  test("are written in binary units: whole bytes, then one decimal below 10 and none above", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536n)).toBe("1.5 KiB");
    expect(formatBytes(4096)).toBe("4.0 KiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB");
    expect(formatBytes(6_800_000_000n)).toBe("6.3 GiB");
    expect(formatBytes(12.34 * 1024 ** 2)).toBe("12 MiB");
    expect(formatBytes(512 * 1024 ** 2)).toBe("512 MiB");
    expect(formatBytes(2097152.4)).toBe("2.0 MiB");
  });

  test("a value that rounds up to 1024 of a unit is written in the next one", () => {
    expect(formatBytes(1024 * 1024 - 100)).toBe("1.0 MiB");
    expect(formatBytes(9.99 * 1024)).toBe("10 KiB");
  });

  test("an unknown size reads as the caller's placeholder", () => {
    expect(formatBytes(undefined)).toBe("-");
    expect(formatBytes(undefined, "—")).toBe("—");
  });

  test("parse in the same units, and what formatBytes writes parses back", () => {
    expect(parseByteSize("1024")).toBe(1024);
    expect(parseByteSize("500M")).toBe(500 * 1024 ** 2);
    expect(parseByteSize("1.5GiB")).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize("2tb")).toBe(2 * 1024 ** 4);
    expect(parseByteSize("-1")).toBeUndefined();
    expect(parseByteSize("12 parsecs")).toBeUndefined();
    for (const n of [1536, 3 * 1024 ** 3, 512 * 1024 ** 2]) expect(parseByteSize(formatBytes(n))).toBe(n);
  });
});
