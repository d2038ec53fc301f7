// rcpu/io/json.hpp: the strict JSON reader behind the zero-shot task files.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <rcpu/io/json.hpp>

#include "io_support.hpp"
#include "support.hpp"

using rcpu::io::Json;
using rcpu::io::parse_json;

TEST_CASE("json: values, nesting and member order") {
  const Json j = parse_json(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "a2": 0.125} )");
  REQUIRE(j.is_object());
  CHECK(j.size() == 3);
  CHECK(j.as_object()[0].first == "a");
  CHECK(j.as_object()[2].first == "a2");
  const Json& a = j.at("a");
  REQUIRE(a.size() == 5);
  CHECK(a.at(0).as_int() == 1);
  CHECK(a.at(1).as_number() == -2500.0);
  CHECK(a.at(2).as_bool());
  CHECK_FALSE(a.at(3).as_bool());
  CHECK(a.at(4).is_null());
  CHECK(j.at("b").at("c").as_string() == "d");
  CHECK(j.at("a2").as_number() == 0.125);
  CHECK(j.find("zz") == nullptr);
  CHECK(parse_json("[]").size() == 0);
  CHECK(parse_json("{}").size() == 0);
  CHECK(parse_json("-0").as_number() == 0.0);
  CHECK(parse_json("1E+2").as_number() == 100.0);
  CHECK(parse_json("1e-400").as_number() == 0.0);  // underflow rounds to zero
  CHECK(parse_json("0.1").as_number() == 0.1);     // correctly rounded
}

TEST_CASE("json: string escapes, surrogate pairs and raw UTF-8") {
  CHECK(parse_json(R"("a\"b\\c\/d\b\f\n\r\t")").as_string() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(parse_json(R"("\u00e9\u20AC")").as_string() == "\xC3\xA9\xE2\x82\xAC");               // é €
  CHECK(parse_json(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");                     // U+1F600
  CHECK(parse_json("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"").as_string() == "caf\xC3\xA9 \xF0\x9F\x98\x80");
  CHECK(parse_json(R"("\u0000")").as_string() == std::string(1, '\0'));
}

TEST_CASE("json: malformed text throws with the byte offset") {
  const std::vector<std::string> bad = {
      "",           "[1,]",         "{\"a\":1,}",   "[1 2]",        "{\"a\" 1}",      "{a:1}",
      "01",         "1.",           "-",            "1e",           ".5",             "tru",
      "nul",        "\"abc",        "\"\\x\"",      "\"\\u12\"",    "\"\\ud800\"",    "\"\\udc00\"",
      "\"\\ud800\\u0041\"",         "\"a\tb\"",     "\"\xC3\"",     "\"\xC0\x80\"",   "\"\xED\xA0\x80\"",
      "\"\xF5\x80\x80\x80\"",       "[1] x",        "{\"a\":}",     "[",              "\xEF\xBB\xBF{}",
      "1e400",      "-1e999",       "[1e309]"};
  for (const std::string& s : bad) {
    INFO("text: " << s);
    CHECK_THROWS_AS(parse_json(s), rcpu::invalid_argument);
  }
  try {
    parse_json("[1, 2,, 3]");
    FAIL("no throw");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find("at byte 6") != std::string::npos);
  }
  // Nesting is bounded (no stack overflow on hostile input).
  CHECK_NOTHROW(parse_json(std::string(256, '[') + std::string(256, ']')));  // 256 levels: the limit
  CHECK_THROWS_AS(parse_json(std::string(257, '[') + std::string(257, ']')), rcpu::invalid_argument);
  CHECK_THROWS_AS(parse_json(std::string(100000, '[')), rcpu::invalid_argument);
}

TEST_CASE("json: typed access checks the type") {
  const Json j = parse_json(R"({"n": 1.5, "s": "x", "big": 1e300})");
  CHECK_THROWS_AS(j.at("n").as_string(), rcpu::invalid_argument);
  CHECK_THROWS_AS(j.at("s").as_number(), rcpu::invalid_argument);
  CHECK_THROWS_AS(j.at("n").as_int(), rcpu::invalid_argument);
  CHECK_THROWS_AS(j.at("big").as_int(), rcpu::invalid_argument);
  CHECK_THROWS_AS(j.at("missing"), rcpu::invalid_argument);
  CHECK_THROWS_AS(j.at("s").at(0), rcpu::invalid_argument);
  CHECK_THROWS_AS(parse_json("[1]").at(1), rcpu::invalid_argument);
}

TEST_CASE("json: JSON Lines files skip blank lines and name the bad line") {
  const rcpu_test::TempDir dir("json");
  const std::string path = dir / "lines.jsonl";
  {
    std::ofstream f(path, std::ios::binary);
    f << "{\"i\": 0}\r\n\n   \n{\"i\": 1}\n{\"i\": 2}";
  }
  std::vector<std::int64_t> seen;
  std::vector<std::size_t> lines;
  rcpu::io::for_each_json_line(path, [&](const Json& j, std::size_t line) {
    seen.push_back(j.at("i").as_int());
    lines.push_back(line);
  });
  CHECK(seen == std::vector<std::int64_t>{0, 1, 2});
  CHECK(lines == std::vector<std::size_t>{1, 4, 5});
  {
    std::ofstream f(path, std::ios::binary);
    f << "{\"i\": 0}\n{\"i\": }\n";
  }
  try {
    rcpu::io::for_each_json_line(path, [](const Json&, std::size_t) {});
    FAIL("no throw");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(std::string(e.what()).find(path + ":2:") != std::string::npos);
  }
  std::filesystem::remove(path);
  CHECK_THROWS_AS(rcpu::io::for_each_json_line(path, [](const Json&, std::size_t) {}), rcpu::invalid_argument);
}
