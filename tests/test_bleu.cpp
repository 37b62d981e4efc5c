// Tests for text/bleu.h: the 13a tokenizer, the n-gram counts, the score formula at corpus and
// sentence level, file reading and its errors, and the sacreBLEU baseline on our Bible corpus.
// Every expected number is derived by hand in the comment next to it (and was re-checked with a
// separate Python implementation of /work/shared/bleu.md, using Python's `re` for the tokenizer).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/bleu.h"

#ifndef PAYLESS_SOURCE_DIR
#define PAYLESS_SOURCE_DIR "/work/main"  // the CMake build defines it; this is for direct g++ builds
#endif

using Catch::Matchers::Contains;
using payless::BleuScore;
using payless::corpus_bleu;
using payless::sentence_bleu;
using payless::tokenize_13a;

namespace {

// A file in the temp folder, named per process so parallel test runs do not collide; removed at
// the end of the scope.
struct TempFile {
  std::string path;
  TempFile(const std::string& name, const std::string& content)
      : path((std::filesystem::temp_directory_path() /
              ("payless_bleu_" + std::to_string(::getpid()) + "_" + name))
                 .string()) {
    std::ofstream out(path, std::ios::binary);
    out << content;
    REQUIRE(out.good());
  }
  explicit TempFile(const std::string& name)  // just the path, nothing written yet
      : path((std::filesystem::temp_directory_path() /
              ("payless_bleu_" + std::to_string(::getpid()) + "_" + name))
                 .string()) {}
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace

TEST_CASE("13a tokenizer splits punctuation as sacreBLEU does", "[bleu]") {
  // The examples of bleu.md section 2.
  CHECK(tokenize_13a("Hello, world! It costs $3.50, right?") ==
        "Hello , world ! It costs $ 3.50 , right ?");
  CHECK(tokenize_13a("e.g. U.S.A., etc.") == "e . g . U . S . A . , etc .");
  CHECK(tokenize_13a("10-20 pages,a,b.c") == "10 - 20 pages , a , b . c");
  // Every ASCII symbol of step 4 is spaced out.
  CHECK(tokenize_13a("(1) [2] {3} <4>") == "( 1 ) [ 2 ] { 3 } < 4 >");
  CHECK(tokenize_13a("a!b\"c#d$e%f&g*h+i/j:k;l=m?n@o\\p^q_r`s|t~u") ==
        "a ! b \" c # d $ e % f & g * h + i / j : k ; l = m ? n @ o \\ p ^ q _ r ` s | t ~ u");
  // Apostrophe and a hyphen between letters stay inside words; '.' and ',' only split next to
  // a non-digit.
  CHECK(tokenize_13a("Beth-lehem-judah, don't 5-6.") == "Beth-lehem-judah , don't 5 - 6 .");
  // Matches do not overlap: step 5 takes "a." then ",."; step 6 then splits the last ".".
  CHECK(tokenize_13a("a.,.") == "a . , .");
  // Whitespace runs, tabs and leading/trailing blanks collapse.
  CHECK(tokenize_13a("  two\t\tspaces   ") == "two spaces");
  CHECK(tokenize_13a("") == "");
  CHECK(tokenize_13a("   ") == "");
}

TEST_CASE("13a tokenizer keeps numbers together unless a mark touches a non-digit", "[bleu]") {
  CHECK(tokenize_13a("1,000.5") == "1,000.5");  // every '.' and ',' sits between digits
  CHECK(tokenize_13a("3.") == "3 .");           // the padding space after '.' is a non-digit
  // "1.5." : the last '.' precedes the padding space -> split; "2,5," likewise; " .5": the space
  // before '.' is a non-digit (step 5) -> ". 5"; " ,5" the same.
  CHECK(tokenize_13a("1.5. 2,5, .5 ,5") == "1.5 . 2,5 , . 5 , 5");
  CHECK(tokenize_13a("pages 10-20") == "pages 10 - 20");  // hyphen after a digit
  CHECK(tokenize_13a("a-1") == "a-1");                    // hyphen after a letter stays
}

TEST_CASE("13a tokenizer: entities, <skipped>, Unicode", "[bleu]") {
  // Entities are replaced in the order quot, amp, lt, gt, each over the whole string, so
  // "&amp;lt;" -> "&lt;" -> "<". "&apos;" is left alone and then spaced as "& apos ;".
  CHECK(tokenize_13a("&amp;lt; &apos; &quot;x&quot; a&gt;b <skipped>x") ==
        "< & apos ; \" x \" a > b x");
  CHECK(tokenize_13a("x&y A&amp;B") == "x & y A & B");
  // Non-ASCII punctuation stays glued to its word (curly quotes, inverted question mark,
  // right single quote, em dash).
  CHECK(tokenize_13a("\u201cHello\u201d \u00bfQu\u00e9 it\u2019s\u2014fine") ==
        "\u201cHello\u201d \u00bfQu\u00e9 it\u2019s\u2014fine");
  // NBSP, ideographic space and tab split (Python's str.split set); zero-width space does not.
  CHECK(tokenize_13a("a\u00a0b\u200bc\u3000d\te") == "a b\u200bc d e");
  // A raw "-\n" joins a hyphenated word and "\n" is a space (only reachable through the API).
  CHECK(tokenize_13a("end-\nof line\nnext") == "endof line next");
}

TEST_CASE("BLEU of a perfect match is 100", "[bleu]") {
  // 10 tokens ("." is its own); every n-gram matches: p_n = 100, BP = 1, BLEU = 100.
  // (exp(log 100) is 100.00000000000004 in doubles, in sacreBLEU too: compare with Approx.)
  const std::string line = "The quick brown fox jumps over the lazy dog.";
  const BleuScore s = corpus_bleu({line}, {line});
  CHECK(s.score == Approx(100.0).epsilon(1e-12));
  CHECK(s.format() ==
        "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 10 ref_len = 10)");
  CHECK(s.signature() == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
  CHECK(sentence_bleu(line, line).score == Approx(100.0).epsilon(1e-12));
  CHECK(sentence_bleu(line, line).signature() ==
        "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.6.0");
}

TEST_CASE("BLEU compares tokens after 13a, so spacing of punctuation and numbers does not matter",
          "[bleu]") {
  // Both sides tokenize to "10 - 20 pages" (4 tokens): all n-grams match -> 100.
  CHECK(corpus_bleu({"10-20 pages"}, {"10 - 20 pages"}).score ==
        Approx(100.0).epsilon(1e-12));
  // "It costs $ 3.50 , right ?" on both sides: 7 tokens, 100.
  const BleuScore s = corpus_bleu({"It costs $3.50, right?"}, {"It costs $ 3.50 , right ?"});
  CHECK(s.score == Approx(100.0).epsilon(1e-12));
  CHECK(s.sys_len == 7);
  // A different number is a different token: "3.50" vs "3.5" (4 tokens each: I paid 3.50 .):
  // unigrams 3/4, bigrams 1/3 ("I paid"), trigrams 0/2, 4-grams 0/1 -> exp smoothing:
  // p3 = 100/(2*2) = 25, p4 = 100/(4*1) = 25;
  // BLEU = (75 * 33.33 * 25 * 25)^(1/4) = 100 * (3/4 * 1/3 * 1/4 * 1/4)^(1/4) = 100 * (1/64)^(1/4)
  //      = 100 / (2*sqrt(2)) = 35.3553...
  const BleuScore n = corpus_bleu({"I paid 3.50."}, {"I paid 3.5."});
  CHECK(n.correct == std::array<int64_t, 4>{3, 1, 0, 0});
  CHECK(n.score == Approx(100.0 / (2.0 * std::sqrt(2.0))).epsilon(1e-12));
  // Case matters (case:mixed): "The" != "the". 1 of 2 unigrams, 0 of 1 bigram.
  CHECK(corpus_bleu({"The cat"}, {"the cat"}).correct == std::array<int64_t, 4>{1, 0, 0, 0});
}

TEST_CASE("BLEU brevity penalty for hypotheses shorter and longer than the reference", "[bleu]") {
  SECTION("shorter: BP = exp(1 - r/c)") {
    // hyp "a b c d" (c = 4) is a prefix of ref "a b c d e f" (r = 6): all precisions 100,
    // BP = exp(1 - 6/4) = exp(-0.5) = 0.60653..., BLEU = 60.653...
    const BleuScore s = corpus_bleu({"a b c d"}, {"a b c d e f"});
    CHECK(s.bp == Approx(std::exp(-0.5)).epsilon(1e-12));
    CHECK(s.score == Approx(100.0 * std::exp(-0.5)).epsilon(1e-12));
    CHECK(s.format() ==
          "BLEU = 60.65 100.0/100.0/100.0/100.0 (BP = 0.607 ratio = 0.667 hyp_len = 4 ref_len = 6)");
  }
  SECTION("longer: no penalty, but lower precisions") {
    // hyp "a b c d e f" vs ref "a b c d": matches 4/6, 3/5, 2/4, 1/3; BP = 1.
    // BLEU = 100 * (4/6 * 3/5 * 2/4 * 1/3)^(1/4) = 100 * (1/15)^(1/4) = 50.8132748...
    const BleuScore s = corpus_bleu({"a b c d e f"}, {"a b c d"});
    CHECK(s.bp == 1.0);
    CHECK(s.score == Approx(100.0 * std::pow(1.0 / 15.0, 0.25)).epsilon(1e-12));
    CHECK(s.format() ==
          "BLEU = 50.81 66.7/60.0/50.0/33.3 (BP = 1.000 ratio = 1.500 hyp_len = 6 ref_len = 4)");
  }
}

TEST_CASE("BLEU exp smoothing halves the missing count again at each empty order", "[bleu]") {
  // hyp "a b c d e" (5) vs ref "a b x c d y e" (7).
  //   unigrams: all 5 in ref                     -> 5/5, p1 = 100
  //   bigrams ab bc cd de; ref has ab, cd        -> 2/4, p2 = 50
  //   trigrams abc bcd cde: none in ref          -> 0/3, m = 2, p3 = 100/(2*3) = 16.667
  //   4-grams abcd bcde: none                    -> 0/2, m = 4, p4 = 100/(4*2) = 12.5
  //   BP = exp(1 - 7/5) = exp(-0.4)
  //   BLEU = exp(-0.4) * (100 * 50 * 16.667 * 12.5)^(1/4) = 21.4148185...
  const BleuScore s = corpus_bleu({"a b c d e"}, {"a b x c d y e"});
  CHECK(s.correct == std::array<int64_t, 4>{5, 2, 0, 0});
  CHECK(s.total == std::array<int64_t, 4>{5, 4, 3, 2});
  CHECK(s.precisions[2] == Approx(100.0 / 6.0).epsilon(1e-12));
  CHECK(s.precisions[3] == Approx(12.5).epsilon(1e-12));
  const double expected = std::exp(-0.4) * std::pow(100.0 * 50.0 * (100.0 / 6.0) * 12.5, 0.25);
  CHECK(s.score == Approx(expected).epsilon(1e-12));
  CHECK(s.format() ==
        "BLEU = 21.41 100.0/50.0/16.7/12.5 (BP = 0.670 ratio = 0.714 hyp_len = 5 ref_len = 7)");
}

TEST_CASE("BLEU with no matching n-gram at all is 0, precisions shown as 0", "[bleu]") {
  // Smoothing never applies when every order has zero matches: the early rule gives 0.
  const BleuScore s = corpus_bleu({"x y z"}, {"a b c"});
  CHECK(s.score == 0.0);
  CHECK(s.format() ==
        "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 3 ref_len = 3)");
  CHECK(sentence_bleu("x y z", "a b c").score == 0.0);
}

TEST_CASE("BLEU with empty lines and an empty hypothesis", "[bleu]") {
  SECTION("an empty line pair adds nothing to the corpus counts") {
    const BleuScore s = corpus_bleu({"a b c d", ""}, {"a b c d", ""});
    CHECK(s.score == Approx(100.0).epsilon(1e-12));
    CHECK(s.sys_len == 4);
    CHECK(s.ref_len == 4);
  }
  SECTION("an empty hypothesis line still counts its reference length") {
    // 4 hyp tokens against 4 + 4 reference tokens: BP = exp(1 - 8/4) = exp(-1); all p = 100.
    const BleuScore s = corpus_bleu({"a b c d", ""}, {"a b c d", "e f g h"});
    CHECK(s.ref_len == 8);
    CHECK(s.score == Approx(100.0 * std::exp(-1.0)).epsilon(1e-12));
  }
  SECTION("empty hypothesis: BP = 0 and BLEU = 0") {
    const BleuScore s = corpus_bleu({""}, {"a b c"});
    CHECK(s.score == 0.0);
    CHECK(s.format() ==
          "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 3)");
    CHECK(sentence_bleu("", "a b c").score == 0.0);
  }
  SECTION("empty hypothesis and reference: 0, BP 1 (hyp_len >= ref_len), ratio 0") {
    CHECK(sentence_bleu("", "").format() ==
          "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 0 ref_len = 0)");
    CHECK(corpus_bleu({}, {}).score == 0.0);
  }
  SECTION("trailing whitespace (including CR) is ignored") {
    CHECK(corpus_bleu({"a b c d \r\t"}, {"a b c d"}).score == Approx(100.0).epsilon(1e-12));
  }
}

TEST_CASE("sentence BLEU uses effective order; corpus BLEU sums counts first", "[bleu]") {
  SECTION("a 2-token sentence") {
    // hyp "the cat" == ref: p1 = p2 = 100, no 3- or 4-grams (total 0).
    // Sentence (effective order): mean over K = 2 orders -> 100.
    // Corpus (K = 4): p3 = p4 = 0 -> log 0 = -9999999999 -> 0.
    CHECK(sentence_bleu("the cat", "the cat").score == Approx(100.0).epsilon(1e-12));
    CHECK(corpus_bleu({"the cat"}, {"the cat"}).score == 0.0);
    // hyp "a b" vs "a c": p1 = 1/2 = 50, bigram 0/1 -> exp smoothing p2 = 100/(2*1) = 50.
    // Sentence: (50 * 50)^(1/2) = 50.
    CHECK(sentence_bleu("a b", "a c").score == Approx(50.0).epsilon(1e-12));
  }
  SECTION("corpus BLEU is not the mean of sentence BLEUs") {
    // Line 1: "the cat sat on the mat" vs "the cat sat on a mat": unigrams 5/6 (the x2 clipped
    //   to 1), bigrams 3/5, trigrams 2/4, 4-grams 1/3, lengths 6/6.
    //   Sentence BLEU = 100 * (5/6 * 3/5 * 2/4 * 1/3)^(1/4) = 100 * (1/12)^(1/4) = 53.728...
    // Line 2: "a dog" vs "the dog": 1/2, 0/1, no 3/4-grams, lengths 2/2.
    //   Sentence BLEU (K = 2) = (50 * 100/(2*1))^(1/2) = 50.
    // Corpus: 6/8, 3/6, 2/4, 1/3, lengths 8/8:
    //   100 * (3/4 * 1/2 * 1/2 * 1/3)^(1/4) = 100 * (1/16)^(1/4) = 50, not (53.73 + 50)/2.
    const std::vector<std::string> hyps = {"the cat sat on the mat", "a dog"};
    const std::vector<std::string> refs = {"the cat sat on a mat", "the dog"};
    const payless::BleuStats line1 = payless::segment_stats(hyps[0], refs[0]);
    CHECK(line1.correct == std::array<int64_t, 4>{5, 3, 2, 1});
    CHECK(line1.total == std::array<int64_t, 4>{6, 5, 4, 3});
    const BleuScore s1 = sentence_bleu(hyps[0], refs[0]);
    const BleuScore s2 = sentence_bleu(hyps[1], refs[1]);
    CHECK(s1.score == Approx(100.0 * std::pow(1.0 / 12.0, 0.25)).epsilon(1e-12));
    CHECK(s2.score == Approx(50.0).epsilon(1e-12));
    const BleuScore c = corpus_bleu(hyps, refs);
    CHECK(c.correct == std::array<int64_t, 4>{6, 3, 2, 1});
    CHECK(c.total == std::array<int64_t, 4>{8, 6, 4, 3});
    CHECK(c.score == Approx(50.0).epsilon(1e-12));
    CHECK(std::abs(c.score - (s1.score + s2.score) / 2) > 1.0);
  }
}

TEST_CASE("BLEU rejects mismatched line counts and bad input", "[bleu]") {
  REQUIRE_THROWS_AS(corpus_bleu({"a", "b"}, {"a", "b", "c"}), payless::Error);
  REQUIRE_THROWS_WITH(corpus_bleu({"a", "b"}, {"a", "b", "c"}),
                      Contains("2 hypothesis lines") && Contains("3 reference lines"));
  // "\xC3\x28" is a broken 2-byte sequence.
  REQUIRE_THROWS_WITH(corpus_bleu({"ok", "bad \xC3\x28"}, {"ok", "ok"}),
                      Contains("hypothesis line 2") && Contains("UTF-8"));
  REQUIRE_THROWS_WITH(sentence_bleu("ok", "\xED\xA0\x80"),  // an encoded surrogate
                      Contains("reference") && Contains("UTF-8"));
  REQUIRE_THROWS_AS(BleuScore().format(-1), payless::Error);
}

TEST_CASE("score_files reads lines like sacreBLEU and names files in errors", "[bleu]") {
  SECTION("CRLF, missing final newline and empty lines") {
    // Lines end at '\n' only; "\r" is trailing whitespace; "x\n\n" holds 2 lines ("x" and "").
    const TempFile hyp("crlf_hyp.txt", "a b c d\r\n\r\nthe cat\r\n");
    const TempFile ref("crlf_ref.txt", "a b c d\n\nthe cat");
    const BleuScore s = payless::score_files(hyp.path, ref.path);
    CHECK(payless::read_text_lines(hyp.path).size() == 3);
    CHECK(payless::read_text_lines(ref.path).size() == 3);
    CHECK(s.sys_len == 6);
    CHECK(s.score == Approx(100.0).epsilon(1e-12));
  }
  SECTION("line counts differ") {
    const TempFile hyp("count_hyp.txt", "a\nb\n");
    const TempFile ref("count_ref.txt", "a\nb\nc\n");
    REQUIRE_THROWS_WITH(payless::score_files(hyp.path, ref.path),
                        Contains(hyp.path) && Contains(ref.path) && Contains("has 2 lines") &&
                            Contains("has 3 lines"));
  }
  SECTION("unreadable inputs") {
    const TempFile missing("does_not_exist.txt");
    const TempFile ref("unreadable_ref.txt", "a\n");
    REQUIRE_THROWS_WITH(payless::score_files(missing.path, ref.path), Contains(missing.path));
    const std::string dir = std::filesystem::temp_directory_path().string();
    REQUIRE_THROWS_WITH(payless::score_files(ref.path, dir),
                        Contains(dir) && Contains("directory"));
    const TempFile gz("compressed.txt.gz", std::string("\x1f\x8b\x08\x00", 4));
    REQUIRE_THROWS_WITH(payless::score_files(gz.path, ref.path), Contains("gzip"));
    const TempFile bad("bad_utf8.txt", "fine\nbroken \xff\n");
    REQUIRE_THROWS_WITH(payless::read_text_lines(bad.path),
                        Contains(bad.path + ":2") && Contains("UTF-8"));
    const TempFile empty_hyp("empty_hyp.txt", "");
    const TempFile empty_ref("empty_ref.txt", "");
    REQUIRE_THROWS_WITH(payless::score_files(empty_hyp.path, empty_ref.path), Contains("empty"));
  }
}

TEST_CASE("BLEU reproduces sacreBLEU 2.6.0 on the Bible test and valid sets", "[bleu]") {
  // bleu.md section 7: KJV as hypothesis against the WEB reference, sacreBLEU defaults.
  const std::string data = PAYLESS_SOURCE_DIR "/../shared/data/bible-es-en/";
  struct Case {
    const char* split;
    const char* expected;
  };
  for (const Case& c : {Case{"test", "BLEU = 39.89"}, Case{"valid", "BLEU = 41.35"}}) {
    const TempFile hyp(std::string(c.split) + ".kjv");
    const TempFile ref(std::string(c.split) + ".en");
    REQUIRE(std::system(("gzip -dc '" + data + c.split + ".kjv.gz' > '" + hyp.path + "'").c_str()) == 0);
    REQUIRE(std::system(("gzip -dc '" + data + c.split + ".en.gz' > '" + ref.path + "'").c_str()) == 0);
    const BleuScore s = payless::score_files(hyp.path, ref.path);
    INFO(c.split << ": " << s.format());
    CHECK(s.format().rfind(std::string(c.expected) + " ", 0) == 0);
  }
}
