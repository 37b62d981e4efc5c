// Tests of text/: tokenizer, BPE, dictionary, binarized corpus and batching. Tag [text].
// Small inline data where possible; the shipped Bible corpora (PAYLESS_SOURCE_DIR/data)
// for the exact-round-trip checks. Everything here runs in well under a second except the
// train-set round trip, tagged [slow].
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/batching.h"
#include "text/bpe.h"
#include "text/corpus.h"
#include "text/dictionary.h"
#include "text/lines.h"
#include "text/tokenizer.h"

using namespace payless;

#ifndef PAYLESS_SOURCE_DIR
#error "PAYLESS_SOURCE_DIR must be defined (CMake does it for payless_tests)"
#endif

namespace {

// The corpora shipped in data/ (copies of the team corpus); the KJV side exists only there.
const std::string kData = PAYLESS_SOURCE_DIR "/data/";
const std::string kTeamData = PAYLESS_SOURCE_DIR "/../shared/data/";

std::string temp_path(const std::string& name) {
  return "/tmp/payless_test_text_" + name;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The message of the payless::Error that f throws ("" if it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

using Tokens = std::vector<std::string>;

// Every line must come back exactly; returns how many lines were checked.
size_t check_round_trip_file(const std::string& path) {
  const std::vector<std::string> lines = read_lines(path);
  const std::vector<std::string> tokenized = tokenize_lines(lines, path);
  REQUIRE(tokenized.size() == lines.size());
  size_t failures = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (detokenize_line(tokenized[i]) != lines[i] && failures++ < 3) {
      INFO(path << ":" << i + 1 << "\n  text:      " << lines[i] << "\n  tokenized: "
                << tokenized[i] << "\n  back:      " << detokenize_line(tokenized[i]));
      CHECK(false);
    }
  }
  CHECK(failures == 0);
  return lines.size();
}

}  // namespace

// ---- tokenizer --------------------------------------------------------------------------------

TEST_CASE("tokenizer splits words and punctuation, Unicode-aware", "[text]") {
  CHECK(tokenize("¡Ven, Señor!") == Tokens{"¡", "Ven", ",", "Señor", "!"});
  CHECK(tokenize("¿Qué niño?") == Tokens{"¿", "Qué", "niño", "?"});
  CHECK(tokenize("ÁÉÍÓÚ ñandú Ñ") == Tokens{"ÁÉÍÓÚ", "ñandú", "Ñ"});
  // Apostrophes inside a word stay; a trailing one is its own token.
  CHECK(tokenize("don't the servants’ Yahweh’s") ==
        Tokens{"don't", "the", "servants", "’", "Yahweh’s"});
  // Decomposed accents (e + U+0301), Greek, Cyrillic and digits are word characters.
  CHECK(tokenize("cafe\xCC\x81 λόγος слово 2015") ==
        Tokens{"cafe\xCC\x81", "λόγος", "слово", "2015"});
  // Symbols outside the word classes are single tokens, even 4-byte ones.
  CHECK(tokenize("a\xF0\x9F\x98\x80" "b") == Tokens{"a", "￭\xF0\x9F\x98\x80￭", "b"});
  CHECK(tokenize("").empty());
  CHECK(tokenize("   ").empty());
}

TEST_CASE("tokenizer marks only gaps that break the default spacing rules", "[text]") {
  // The examples of tokenizer.h.
  CHECK(tokenize_line("¡Ven, Señor!") == "¡ Ven , Señor !");
  CHECK(tokenize_line("he said—yes") == "he said — yes");
  CHECK(tokenize_line("John 3:16") == "John 3 :￭ 16");
  CHECK(tokenize_line("a - b") == "a ▁-▁ b");
  // ASCII double quotes alternate between opening and closing.
  CHECK(tokenize_line("He said \"go\" and \"stay\".") == "He said \" go \" and \" stay \" .");
  CHECK(tokenize_line("“Yes,” he said (twice).") == "“ Yes , ” he said ( twice ) .");
}

TEST_CASE("detokenize(tokenize(s)) == s, including non-ASCII and odd spacing", "[text]") {
  const std::vector<std::string> texts = {
      "In the beginning, God created the heavens and the earth.",
      "¿Quién es éste? ¡Jehová de los ejércitos!",
      "Fuése Judá, á causa de la aflicción; ella moró entre las gentes: «no halló descanso».",
      "“Don’t be afraid,” he said, ‘for I am with you.’",
      "the servants’ houses (and the king’s) were [all] burned...",
      "John 3:16, 1,000.50 and 50% of $20 -- or #1?",
      "a - b , c ( d ) e “ f ” g",
      "well—yes— no —maybe",
      "x/y and/or 1990–2000",
      "He said \"go\" and \"stay\" and \"come\"",
      "rock 'n' roll 'quoted'",
      "cafe\xCC\x81 λόγος, слово; 日本語のテキスト。",
      "emoji \xF0\x9F\x98\x80!\xF0\x9F\x98\x80 done",
      "!!!???...,,,",
      "(((nested)))",
      "a",
      "",
  };
  for (const std::string& text : texts) {
    INFO("text: " << text << "\ntokenized: " << tokenize_line(text));
    CHECK(detokenize(tokenize(text)) == text);
    CHECK(detokenize_line(tokenize_line(text)) == text);
  }
  // White space other than single spaces is normalized, as documented.
  CHECK(detokenize_line(tokenize_line("  a \t b  ,\u00A0c ")) == "a b , c");
}

TEST_CASE("detokenizer accepts arbitrary model output without failing", "[text]") {
  CHECK(detokenize({"a", "￭", "b"}) == "ab");
  CHECK(detokenize({"￭", "a", "▁", "b", "▁"}) == "a b");
  CHECK(detokenize({"(", "▁", "x", ")"}) == "( x)");
  CHECK(detokenize({"￭,▁", "a"}) == ", a");
  CHECK(detokenize({"￭￭", "▁▁"}) == "￭ ▁");
  CHECK(detokenize({"\xC3", ",", "\xFF"}) == "\xC3, \xFF");
  CHECK(detokenize({}).empty());
}

TEST_CASE("tokenizer rejects invalid UTF-8 naming file and line, and reserved markers", "[text]") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"bad \xC3\x28 byte", "cut short"},           // lead byte without continuation
      {"stray \x80", "continuation byte"},           // continuation without lead
      {"overlong \xC0\xAF", "not a valid lead"},     // C0 is never valid
      {"overlong \xE0\x80\xAF", "overlong"},         // 3-byte form of '/'
      {"surrogate \xED\xA0\x80", "not a Unicode"},   // U+D800
      {"too big \xF4\x90\x80\x80", "not a Unicode"}, // U+110000
      {"cut \xE2\x82", "cut short"},                 // end of line inside a sequence
  };
  for (const auto& [line, why] : bad) {
    const std::string message =
        error_of([&] { tokenize_lines({"fine", "also fine", line}, "corpus.txt"); });
    INFO(message);
    CHECK(message.find("corpus.txt:3:") == 0);
    CHECK(message.find("invalid UTF-8") != std::string::npos);
    CHECK(message.find(why) != std::string::npos);
  }
  const std::string reserved = error_of([] { tokenize_lines({"a ￭ b"}, "x.txt"); });
  CHECK(reserved.find("x.txt:1:") == 0);
  CHECK(reserved.find("reserved") != std::string::npos);
  CHECK_THROWS_AS(tokenize("a \xE2\x96\x81 b"), Error);
}

TEST_CASE("tokenizer round trip is exact on every line of the valid and test corpora", "[text]") {
  size_t lines = 0;
  for (const char* file : {"bible-en-lm/valid.txt.gz", "bible-en-lm/test.txt.gz",
                           "bible-es-en/valid.es.gz", "bible-es-en/valid.en.gz",
                           "bible-es-en/test.es.gz", "bible-es-en/test.en.gz"}) {
    lines += check_round_trip_file(kData + file);
  }
  CHECK(lines == 530 + 1193 + 2 * 528 + 2 * 1177);
}

TEST_CASE("tokenizer round trip is exact on every line of the training corpora", "[text][slow]") {
  for (const char* file : {"bible-en-lm/train.txt.gz", "bible-es-en/train.es.gz", "bible-es-en/train.en.gz"})
    check_round_trip_file(kData + file);
  check_round_trip_file(kTeamData + "bible-es-en/train.kjv.gz");
}

TEST_CASE("read_lines handles CRLF, BOM, a missing final newline, gzip and missing files",
          "[text]") {
  const std::string path = temp_path("lines.txt");
  write_file(path, "\xEF\xBB\xBFone\r\ntwo\n\nfour");
  CHECK(read_lines(path) == std::vector<std::string>{"one", "two", "", "four"});
  write_file(path, "");
  CHECK(read_lines(path).empty());
  CHECK(read_lines(kData + "bible-es-en/valid.es.gz").size() == 528);
  const std::string missing = error_of([] { read_lines("/nonexistent/file.txt"); });
  CHECK(missing.find("/nonexistent/file.txt") != std::string::npos);
  // A damaged gzip file is reported, not read as empty.
  write_file(path, std::string("\x1F\x8B\x08\x00garbage", 11));
  CHECK(error_of([&] { read_lines(path); }).find("gzip") != std::string::npos);
  std::remove(path.c_str());
}

// ---- BPE ----------------------------------------------------------------------------------------

TEST_CASE("BPE on a tiny corpus learns the merges worked out by hand", "[text]") {
  // Words with counts: low 5, lower 2, newest 6, widest 3. Initial symbols end in </w>:
  //   l o w</w> (5)   l o w e r</w> (2)   n e w e s t</w> (6)   w i d e s t</w> (3)
  // 1. e s = 6+3 = 9 ties with s t</w> = 9; the larger pair wins: ("s","t</w>") > ("e","s").
  // 2. e st</w> = 9.
  // 3. l o = 5+2 = 7.
  // 4. n e, e w, w est</w> all 6: the largest pair is ("w","est</w>").
  // 5. n e, e west</w> both 6: ("n","e") > ("e","west</w>").
  // 6. ne west</w> = 6 beats lo w</w> = 5.   7. lo w</w> = 5.
  // 8. w i, i d, d est</w>, lo w, w e, e r</w>: 3, 3, 3, 2, 2, 2 -> ("w","i") is the largest.
  const WordCounts counts = {{"low", 5}, {"lower", 2}, {"newest", 6}, {"widest", 3}};
  const BpeCodes codes = learn_bpe(counts, 8);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"s", "t</w>"}, {"e", "st</w>"}, {"l", "o"},      {"w", "est</w>"},
      {"n", "e"},     {"ne", "west</w>"}, {"lo", "w</w>"}, {"w", "i"}};
  CHECK(codes.merges == expected);

  Bpe bpe(codes);
  // lowest: l o w e s t</w> -> (s t</w>) -> (e st</w>) -> (l o) -> (w est</w>) = lo west</w>.
  CHECK(bpe.segment("lowest") == Tokens{"lo", "west"});
  CHECK(bpe.apply_line("lowest newest low widest lower") ==
        "lo@@ west newest low wi@@ d@@ est lo@@ w@@ e@@ r");
  CHECK(bpe.apply_line("ñ x") == "ñ x");  // unseen characters pass through

  // With a large budget, learning stops when no pair is left (after 13 merges), and with
  // min_frequency 4 when the best pair occurs fewer than 4 times (after merge 7, count 5).
  CHECK(learn_bpe(counts, 1000).merges.size() == 13);
  CHECK(learn_bpe(counts, 1000, 4).merges.size() == 7);
}

namespace {

// Reference learner: recounts every pair of every word before each merge (subword-nmt's
// algorithm without its bookkeeping). Slow and obviously right.
std::vector<std::pair<std::string, std::string>> naive_bpe(const WordCounts& counts,
                                                           int num_merges) {
  std::map<std::vector<std::string>, int64_t> words;
  for (const auto& [word, count] : counts) {
    std::vector<std::string> symbols;
    for (size_t i = 0; i < word.size();) {
      size_t n = 1;
      while (i + n < word.size() && (static_cast<unsigned char>(word[i + n]) & 0xC0) == 0x80) ++n;
      symbols.push_back(word.substr(i, n));
      i += n;
    }
    symbols.back() += "</w>";
    words[symbols] += count;
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (int m = 0; m < num_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> stats;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) stats[{symbols[i], symbols[i + 1]}] += count;
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [pair, count] : stats) {
      if (count > best_count || (count == best_count && pair > *best)) best = &pair, best_count = count;
    }
    if (!best || best_count < 2) break;
    const auto merge = *best;
    merges.push_back(merge);
    std::map<std::vector<std::string>, int64_t> next;
    for (const auto& [symbols, count] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merge.first && symbols[i + 1] == merge.second) {
          out.push_back(merge.first + merge.second);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      next[out] += count;
    }
    words = std::move(next);
  }
  return merges;
}

}  // namespace

TEST_CASE("BPE learner with the incremental index equals a full recount per merge", "[text]") {
  std::vector<std::string> lines = read_lines(kData + "bible-es-en/valid.es.gz");
  lines.resize(60);
  WordCounts counts;
  count_words(tokenize_lines(lines, "valid.es"), counts);
  const BpeCodes fast = learn_bpe(counts, 300);
  CHECK(fast.merges.size() == 300);
  CHECK(fast.merges == naive_bpe(counts, 300));
}

TEST_CASE("BPE learn + apply round trip on real text: removing '@@ ' restores it", "[text]") {
  const std::vector<std::string> en =
      tokenize_lines(read_lines(kData + "bible-es-en/valid.en.gz"), "valid.en");
  const std::vector<std::string> es =
      tokenize_lines(read_lines(kData + "bible-es-en/valid.es.gz"), "valid.es");
  // Joint BPE: words of both languages counted together.
  WordCounts counts;
  count_words(en, counts);
  count_words(es, counts);
  const BpeCodes codes = learn_bpe(counts, 2000);
  REQUIRE(codes.merges.size() == 2000);

  Bpe bpe(codes);
  size_t split_words = 0;
  for (const auto* side : {&en, &es}) {
    const std::vector<std::string> out = bpe.apply_lines(*side, "valid");
    for (size_t i = 0; i < side->size(); ++i) {
      INFO((*side)[i] << "\n" << out[i]);
      REQUIRE(remove_bpe(out[i]) == (*side)[i]);
      for (const std::string& piece : split_spaces(out[i])) split_words += piece.size() > 2 && piece.compare(piece.size() - 2, 2, "@@") == 0;
    }
  }
  CHECK(split_words > 1000);  // BPE did split words: the test is not vacuous

  // The codes file: subword-nmt header, one merge per line, read back to the same segmentation.
  const std::string path = temp_path("codes.txt");
  codes.save(path);
  const std::vector<std::string> file = read_lines(path);
  CHECK(file.size() == 2001);
  CHECK(file[0] == "#version: 0.2");
  CHECK(file[1] == codes.merges[0].first + " " + codes.merges[0].second);
  const BpeCodes loaded = BpeCodes::load(path);
  CHECK(loaded.merges == codes.merges);
  Bpe bpe2(loaded);
  for (size_t i = 0; i < en.size(); i += 7) CHECK(bpe2.apply_line(en[i]) == bpe.apply_line(en[i]));
  std::remove(path.c_str());
}

TEST_CASE("BPE codes file errors name file and line; unsafe tokens are refused", "[text]") {
  const std::string path = temp_path("bad_codes.txt");
  write_file(path, "t h\nth e</w>\n");
  std::string message = error_of([&] { BpeCodes::load(path); });
  CHECK(message.find(path + ":1:") == 0);
  CHECK(message.find("#version: 0.2") != std::string::npos);

  write_file(path, "#version: 0.2\nt h\nthe\nt he\n");
  message = error_of([&] { BpeCodes::load(path); });
  CHECK(message.find(path + ":3:") == 0);

  write_file(path, "#version: 0.1\nt h\n");
  CHECK(error_of([&] { BpeCodes::load(path); }).find("version") != std::string::npos);

  write_file(path, "#version: 0.2\r\nt h\r\n\n");  // CRLF and a trailing blank line are fine
  CHECK(BpeCodes::load(path).merges.size() == 1);
  std::remove(path.c_str());

  Bpe bpe(BpeCodes{});
  message = error_of([&] { bpe.apply_lines({"fine", "a b@@ c"}, "in.tok"); });
  CHECK(message.find("in.tok:2:") == 0);
  CHECK(remove_bpe("a@@ b c@@") == "ab c");
}

// ---- dictionary ---------------------------------------------------------------------------------

TEST_CASE("dictionary is built like fairseq: order, threshold, size limit, padding", "[text]") {
  Dictionary dict;
  dict.add_lines({"b a c a", "a b d", "e"});  // a 3, b 2, c 1, d 1, e 1
  dict.finalize(/*threshold=*/0, /*nwords=*/-1, /*padding_factor=*/8);
  REQUIRE(dict.size() == 16);  // 4 specials + 5 tokens + 7 madeupwords
  CHECK(dict.token(0) == "<s>");
  CHECK(dict.token(Dictionary::kPad) == "<pad>");
  CHECK(dict.token(Dictionary::kEos) == "</s>");
  CHECK(dict.token(Dictionary::kUnk) == "<unk>");
  CHECK(dict.token(4) == "a");
  CHECK(dict.token(5) == "b");
  CHECK(dict.token(6) == "c");  // ties in code point order
  CHECK(dict.token(8) == "e");
  CHECK(dict.count(4) == 3);
  CHECK(dict.token(9) == "madeupword0000");
  CHECK(dict.token(15) == "madeupword0006");
  CHECK(dict.count(15) == 0);

  Dictionary small;
  small.add_lines({"b a c a", "a b d", "e"});
  small.finalize(/*threshold=*/2, -1, /*padding_factor=*/1);
  CHECK(small.size() == 6);  // a, b
  Dictionary limited;
  limited.add_lines({"b a c a", "a b d", "e"});
  limited.finalize(0, /*nwords=*/7, /*padding_factor=*/1);
  CHECK(limited.size() == 7);  // specials count towards nwords
  CHECK(limited.token(6) == "c");
}

TEST_CASE("dict.txt write/read round trip, and bad lines named by file and line", "[text]") {
  Dictionary dict;
  dict.add_lines({"el niño ñandú", "el ¿ ?"});
  dict.finalize();
  const std::string path = temp_path("dict.txt");
  dict.save(path);
  const std::vector<std::string> file = read_lines(path);
  REQUIRE(file.size() == static_cast<size_t>(dict.size() - 4));  // specials not written
  CHECK(file[0] == "el 2");
  CHECK(file.back() == "madeupword0006 0");  // 4 specials + 5 tokens -> 16
  const Dictionary loaded = Dictionary::load(path);
  REQUIRE(loaded.size() == dict.size());
  for (int32_t i = 0; i < dict.size(); ++i) {
    CHECK(loaded.token(i) == dict.token(i));
    CHECK(loaded.count(i) == dict.count(i));
  }

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"a 1\nb\n", ":2:"},          // no count
      {"a 1\nb x\n", ":2:"},        // count not a number
      {"a 1\nb -3\n", ":2:"},       // negative count
      {"a 1\nb 2\na 3\n", ":3:"},   // duplicate
      {"a 1\n\nb 2\n", ":2:"},      // empty line
      {"<unk> 5\n", ":1:"},         // a special, not overwritten
  };
  for (const auto& [content, where] : bad) {
    write_file(path, content);
    const std::string message = error_of([&] { Dictionary::load(path); });
    INFO(content << " -> " << message);
    CHECK(message.find(path + where) == 0);
  }
  write_file(path, "a 1\na 7 #fairseq:overwrite\n");
  CHECK(Dictionary::load(path).count(4) == 7);
  std::remove(path.c_str());
}

TEST_CASE("dictionary encodes with <unk> counting and decodes", "[text]") {
  Dictionary dict;
  dict.add_lines({"the cat sat"});
  dict.finalize(0, -1, 1);
  int64_t unknown = 0;
  const std::vector<int32_t> ids = dict.encode("the dog sat on <unk>", true, &unknown);
  CHECK(unknown == 2);  // dog, on; the literal <unk> is not counted
  REQUIRE(ids.size() == 6);
  CHECK(ids[1] == Dictionary::kUnk);
  CHECK(ids.back() == Dictionary::kEos);
  CHECK(dict.encode("the", false) == std::vector<int32_t>{dict.index("the")});
  CHECK(dict.decode(ids) == "the <unk> sat <unk> <unk>");
  CHECK(dict.decode({Dictionary::kBos, 4, Dictionary::kPad, Dictionary::kEos}, true) ==
        "<s> " + dict.token(4) + " </s>");
  CHECK(error_of([&] { dict.decode({99}); }).find("99") != std::string::npos);
}

// ---- binarized corpus -----------------------------------------------------------------------------

TEST_CASE("binarized corpus write/read round trip and damaged files", "[text]") {
  Dictionary dict;
  const std::vector<std::string> lines = {"a b c", "", "c c a@@ b", "d"};
  dict.add_lines(lines);
  dict.finalize();
  BinarizeStats stats;
  const Corpus corpus = binarize_lines(lines, dict, "mem.txt", &stats);
  CHECK(stats.sentences == 4);
  CHECK(stats.tokens == 8);
  CHECK(stats.unknown == 0);
  CHECK(corpus.sentence_length(1) == 0);

  const std::string path = temp_path("corpus.bin");
  corpus.save(path);
  const Corpus loaded = Corpus::load(path);
  CHECK(loaded.name() == path);
  CHECK(loaded.vocab_size() == dict.size());
  REQUIRE(loaded.num_sentences() == 4);
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(loaded.sentence_ids(i) == corpus.sentence_ids(i));
    CHECK(dict.decode(loaded.sentence_ids(i)) == lines[i]);
  }

  const std::string good = read_file(path);
  CHECK(good.size() == 48 + 8 * 5 + 4 * 8);
  const auto load_error = [&](const std::string& bytes) {
    write_file(path, bytes);
    return error_of([&] { Corpus::load(path); });
  };
  std::string message = load_error(good.substr(0, good.size() - 3));
  CHECK(message.find(path) == 0);
  CHECK(message.find("truncated") != std::string::npos);
  CHECK(load_error(good.substr(0, 20)).find("truncated") != std::string::npos);
  std::string flipped = good;
  flipped[flipped.size() - 2] ^= 0x10;
  CHECK(load_error(flipped).find("checksum") != std::string::npos);
  CHECK(load_error("NOTACORPUS" + good.substr(10)).find("PLCORPUS") != std::string::npos);
  CHECK(load_error(good + "x").find("after the announced end") != std::string::npos);
  std::remove(path.c_str());
  CHECK(error_of([&] { Corpus::load(path); }).find(path) == 0);

  CHECK(error_of([&] { binarize_lines({}, dict, "empty.txt"); }).find("empty.txt") == 0);
  CHECK(error_of([&] { Corpus("nothing").save(path); }).find(path) == 0);
}

TEST_CASE("text file -> tokenize -> BPE -> dictionary -> binarized corpus", "[text]") {
  const std::string text = temp_path("raw.txt");
  write_file(text, "¿Quién es éste?\nEl niño, el ñandú.\n");
  WordCounts counts;
  count_words(tokenize_lines(read_lines(text), text), counts);
  Bpe bpe(learn_bpe(counts, 10, 1));
  const std::vector<std::string> prepared = prepare_text_file(text, &bpe);
  Dictionary dict;
  dict.add_lines(prepared);
  dict.finalize();
  BinarizeStats stats;
  const Corpus corpus = binarize_text_file(text, &bpe, dict, &stats);
  CHECK(stats.unknown == 0);
  REQUIRE(corpus.num_sentences() == 2);
  CHECK(detokenize_line(remove_bpe(dict.decode(corpus.sentence_ids(1)))) == "El niño, el ñandú.");

  write_file(text, "");
  CHECK(error_of([&] { binarize_text_file(text, &bpe, dict); }).find(text) == 0);
  write_file(text, "ok\nbad \xFF\n");
  CHECK(error_of([&] { prepare_text_file(text, &bpe); }).find(text + ":2:") == 0);
  std::remove(text.c_str());
}

// ---- batching -----------------------------------------------------------------------------------

TEST_CASE("SplitMix64 and the shuffle are deterministic", "[text]") {
  SplitMix64 rng(0);
  CHECK(rng.next() == 0xE220A8397B1DCDAFULL);  // the published first output for seed 0
  const std::vector<int64_t> a = shuffled_indices(100, 42);
  CHECK(a == shuffled_indices(100, 42));
  CHECK(a != shuffled_indices(100, 43));
  CHECK(std::set<int64_t>(a.begin(), a.end()).size() == 100);
  CHECK(epoch_seed(1, 0) != epoch_seed(1, 1));
}

namespace {

// Sentences of lengths 0..12 with distinct ids, so every position of the stream is recognisable.
Corpus make_corpus(const std::string& name, int64_t sentences, int64_t offset) {
  Corpus corpus(name);
  int32_t next_id = 10;
  for (int64_t i = 0; i < sentences; ++i) {
    std::vector<int32_t> ids;
    for (int64_t k = 0; k < (i * 7 + offset) % 13; ++k) ids.push_back(next_id++);
    corpus.add_sentence(ids);
  }
  return corpus;
}

}  // namespace

TEST_CASE("LM batching covers every stream token once per epoch, input shifted by one", "[text]") {
  const Corpus corpus = make_corpus("lm", 40, 3);
  std::vector<int32_t> stream;
  for (int64_t i = 0; i < corpus.num_sentences(); ++i) {
    for (int32_t id : corpus.sentence_ids(i)) stream.push_back(id);
    stream.push_back(Dictionary::kEos);
  }
  LmBatchOptions options;
  options.tokens_per_sample = 16;
  options.max_tokens = 50;  // 3 blocks per batch
  options.seed = 7;
  LmBatcher batcher(corpus, options);
  REQUIRE(batcher.stream_length() == static_cast<int64_t>(stream.size()));
  CHECK(batcher.blocks_per_batch() == 3);
  const int64_t n = batcher.stream_length(), L = 16;

  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int> seen(n, 0);
    std::vector<int64_t> block_order;
    for (int64_t k = 0; k < batcher.batches_per_epoch(); ++k) {
      const LmBatch batch = batcher.next();
      CHECK(batch.B * L <= options.max_tokens);
      int64_t real = 0;
      for (int64_t b = 0; b < batch.B; ++b) {
        const int64_t start = batch.block_ids[b] * L;
        block_order.push_back(batch.block_ids[b]);
        for (int64_t t = 0; t < batch.T; ++t) {
          const int32_t target = batch.target[b * batch.T + t];
          const int32_t input = batch.input[b * batch.T + t];
          if (start + t >= n) {  // padding after the end of the stream
            CHECK(target == Dictionary::kPad);
            CHECK(input == Dictionary::kPad);
            continue;
          }
          CHECK(target == stream[start + t]);
          CHECK(input == (start + t == 0 ? Dictionary::kEos : stream[start + t - 1]));
          ++seen[start + t];
          ++real;
        }
      }
      CHECK(real == batch.num_tokens);
    }
    CHECK(std::count(seen.begin(), seen.end(), 1) == n);  // every token once, none twice
    CHECK(batcher.position() == BatchPosition{epoch + 1, 0});
    std::vector<int64_t> sorted = block_order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(block_order != sorted);  // shuffled
  }

  options.shuffle = false;
  LmBatcher in_order(corpus, options);
  CHECK(in_order.next().block_ids == std::vector<int64_t>{0, 1, 2});

  options.max_tokens = 15;
  CHECK(error_of([&] { LmBatcher(corpus, options); }).find("max_tokens") != std::string::npos);
}

TEST_CASE("LM batching resumed from a saved position continues identically", "[text]") {
  const Corpus corpus = make_corpus("lm", 60, 1);
  LmBatchOptions options;
  options.tokens_per_sample = 8;
  options.max_tokens = 24;
  options.seed = 3;
  LmBatcher a(corpus, options);
  const int64_t per_epoch = a.batches_per_epoch();
  for (int64_t k = 0; k < per_epoch + 5; ++k) a.next();  // into the second epoch
  const BatchPosition saved = a.position();
  CHECK(saved == BatchPosition{1, 5});

  LmBatcher b(corpus, options);
  b.set_position(saved);
  for (int64_t k = 0; k < 2 * per_epoch; ++k) {  // across the next epoch boundary
    const LmBatch x = a.next(), y = b.next();
    REQUIRE(x.block_ids == y.block_ids);
    REQUIRE(x.input == y.input);
    REQUIRE(x.target == y.target);
  }
  CHECK(a.position() == b.position());
  CHECK_THROWS_AS(b.set_position({0, per_epoch + 1}), Error);
  CHECK_THROWS_AS(b.set_position({-1, 0}), Error);
}

TEST_CASE("translation batching: budget, padding conventions, skipped pairs, resume", "[text]") {
  const Corpus source = make_corpus("train.es.bin", 200, 2);
  const Corpus target = make_corpus("train.en.bin", 200, 5);
  TranslationBatchOptions options;
  options.max_tokens = 40;
  options.max_source_len = 11;  // with </s>: source sentences of up to 10 tokens
  options.max_target_len = 12;
  options.seed = 5;
  TranslationBatcher batcher(source, target, options);

  int64_t expected_skipped = 0;
  for (int64_t i = 0; i < 200; ++i) {
    expected_skipped +=
        source.sentence_length(i) + 1 > 11 || target.sentence_length(i) + 1 > 12;
  }
  REQUIRE(expected_skipped > 0);
  CHECK(batcher.num_skipped() == expected_skipped);
  CHECK(batcher.num_pairs() == 200 - expected_skipped);

  std::vector<int> seen(200, 0);
  for (int64_t k = 0; k < batcher.batches_per_epoch(); ++k) {
    const TranslationBatch batch = batcher.next();
    CHECK(batch.B * std::max(batch.S, batch.T) <= options.max_tokens);
    for (int64_t b = 0; b < batch.B; ++b) {
      const int64_t i = batch.sentence_ids[b];
      ++seen[i];
      const std::vector<int32_t> x = source.sentence_ids(i), y = target.sentence_ids(i);
      const int64_t m = static_cast<int64_t>(x.size()), len = static_cast<int64_t>(y.size());
      CHECK(batch.source_lengths[b] == m + 1);
      CHECK(batch.target_lengths[b] == len + 1);
      // Source: left padding, then x, then </s>.
      const int32_t* src = batch.source.data() + b * batch.S;
      for (int64_t s = 0; s < batch.S - m - 1; ++s) CHECK(src[s] == Dictionary::kPad);
      CHECK(std::equal(x.begin(), x.end(), src + batch.S - m - 1));
      CHECK(src[batch.S - 1] == Dictionary::kEos);
      // Target: y, </s>, right padding. Decoder input: </s>, y, right padding.
      const int32_t* tgt = batch.target.data() + b * batch.T;
      const int32_t* dec = batch.decoder_input.data() + b * batch.T;
      CHECK(std::equal(y.begin(), y.end(), tgt));
      CHECK(tgt[len] == Dictionary::kEos);
      CHECK(dec[0] == Dictionary::kEos);
      CHECK(std::equal(y.begin(), y.end(), dec + 1));
      for (int64_t t = len + 1; t < batch.T; ++t) {
        CHECK(tgt[t] == Dictionary::kPad);
        CHECK(dec[t] == Dictionary::kPad);
      }
    }
  }
  for (int64_t i = 0; i < 200; ++i) {
    const bool too_long = source.sentence_length(i) + 1 > 11 || target.sentence_length(i) + 1 > 12;
    CHECK(seen[i] == (too_long ? 0 : 1));
  }

  // Resume in the middle of the second epoch.
  for (int k = 0; k < 3; ++k) batcher.next();
  TranslationBatcher resumed(source, target, options);
  resumed.set_position(batcher.position());
  for (int64_t k = 0; k < batcher.batches_per_epoch() + 2; ++k) {
    const TranslationBatch x = batcher.next(), y = resumed.next();
    REQUIRE(x.sentence_ids == y.sentence_ids);
    REQUIRE(x.source == y.source);
    REQUIRE(x.decoder_input == y.decoder_input);
  }

  // Batch order differs between epochs, the batches themselves do not.
  TranslationBatcher c(source, target, options);
  std::vector<std::vector<int64_t>> e0, e1;
  for (int64_t k = 0; k < c.batches_per_epoch(); ++k) e0.push_back(c.next().sentence_ids);
  for (int64_t k = 0; k < c.batches_per_epoch(); ++k) e1.push_back(c.next().sentence_ids);
  CHECK(e0 != e1);
  std::sort(e0.begin(), e0.end());
  std::sort(e1.begin(), e1.end());
  CHECK(e0 == e1);
}

TEST_CASE("translation batching: line count mismatch, source-only, sentence limit", "[text]") {
  const Corpus source = make_corpus("valid.es.bin", 30, 2);
  const Corpus target = make_corpus("valid.en.bin", 29, 5);
  TranslationBatchOptions options;
  const std::string message = error_of([&] { TranslationBatcher(source, target, options); });
  INFO(message);
  CHECK(message.find("valid.es.bin has 30") != std::string::npos);
  CHECK(message.find("valid.en.bin has 29") != std::string::npos);

  options.max_sentences = 4;
  options.shuffle = false;
  TranslationBatcher only_source(source, options);
  int64_t total = 0, previous_s = 0;
  for (int64_t k = 0; k < only_source.batches_per_epoch(); ++k) {
    const TranslationBatch batch = only_source.next();
    CHECK(batch.B <= 4);
    CHECK(batch.T == 0);
    CHECK(batch.target.empty());
    CHECK(batch.S >= previous_s);  // unshuffled: sorted by length
    previous_s = batch.S;
    total += batch.B;
  }
  CHECK(total == 30);

  options.max_source_len = 1;  // only empty sentences fit
  options.max_sentences = 0;
  TranslationBatcher tiny(source, options);
  CHECK(tiny.num_pairs() + tiny.num_skipped() == 30);
  options.max_tokens = 0;
  CHECK_THROWS_AS(TranslationBatcher(source, options), Error);
}
