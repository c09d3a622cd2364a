/* test_config.c: defaults, INI parsing, path resolution, --set, errors, JSON echo, validation. */
#include "testutil.h"

#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* write `text` to <tmp>/config/<name>; returns the path (static buffer) */
static const char *write_ini(const char *name, const char *text) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tu_tmp_dir("config"), name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static void test_defaults(void **state) {
    pe_config c;
    cfg_init_defaults(&c);
    assert_string_equal(c.model_path, "");
    assert_string_equal(c.model_format, "auto");
    assert_string_equal(c.model_tokenizer, "");
    assert_string_equal(c.model_config, "");
    assert_string_equal(c.data_path, "");
    assert_string_equal(c.data_format, "auto");
    assert_string_equal(c.data_mode, "");
    assert_string_equal(c.data_labels, "");
    assert_int_equal(c.data_limit, 0);
    assert_int_equal(c.data_context, 0);
    assert_int_equal(c.data_stride, 0);
    assert_string_equal(c.run_out, "runs/default");
    assert_int_equal(c.run_batch, 8);
}

static void test_parse_good_ini(void **state) {
    const char *path = write_ini("good.ini",
                                 "; a comment\n"
                                 "# another\n"
                                 "[model]\n"
                                 "path = /abs/model.bin\n"
                                 "format = llama2c\n"
                                 "tokenizer = bytes\n"
                                 "\n"
                                 "[data]\n"
                                 "  path = /abs/tiny.txt   ; inline comment\n"
                                 "  mode = windows\n"
                                 "limit = 100\n"
                                 "context = 64\n"
                                 "stride = 32\n"
                                 "format = text\n"
                                 "[run]\n"
                                 "batch = 2\n"
                                 "out = /abs/out\n");
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_OK);
    assert_string_equal(c.model_path, "/abs/model.bin");
    assert_string_equal(c.model_format, "llama2c");
    assert_string_equal(c.model_tokenizer, "bytes");
    assert_string_equal(c.model_config, "");
    assert_string_equal(c.data_path, "/abs/tiny.txt");
    assert_string_equal(c.data_mode, "windows");
    assert_string_equal(c.data_format, "text");
    assert_int_equal(c.data_limit, 100);
    assert_int_equal(c.data_context, 64);
    assert_int_equal(c.data_stride, 32);
    assert_int_equal(c.run_batch, 2);
    assert_string_equal(c.run_out, "/abs/out");
    assert_int_equal(cfg_validate(&c, &err), PE_OK);
}

static void test_relative_paths(void **state) {
    const char *path = write_ini("rel.ini",
                                 "[model]\npath = m/model.bin\ntokenizer = none\nconfig = ../cfg.json\n"
                                 "[data]\npath = tiny.txt\nlabels = /abs/labels\n"
                                 "[run]\nout = runs/x\n");
    char dir[4096], want[4200];
    snprintf(dir, sizeof dir, "%s", tu_tmp_dir("config"));
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_OK);
    snprintf(want, sizeof want, "%s/m/model.bin", dir);
    assert_string_equal(c.model_path, want);
    assert_string_equal(c.model_tokenizer, "none"); /* special word: not a path */
    snprintf(want, sizeof want, "%s/../cfg.json", dir);
    assert_string_equal(c.model_config, want);
    snprintf(want, sizeof want, "%s/tiny.txt", dir);
    assert_string_equal(c.data_path, want);
    assert_string_equal(c.data_labels, "/abs/labels"); /* absolute: unchanged */
    snprintf(want, sizeof want, "%s/runs/x", dir);
    assert_string_equal(c.run_out, want);
    assert_string_equal(c.model_format, "auto"); /* untouched keys keep their defaults */
}

static void test_set_overrides(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    assert_int_equal(cfg_apply_set(&c, "model.path=rel/model.bin", &err), PE_OK);
    assert_string_equal(c.model_path, "rel/model.bin"); /* --set paths are taken as given */
    assert_int_equal(cfg_apply_set(&c, "data.path=a=b.txt", &err), PE_OK);
    assert_string_equal(c.data_path, "a=b.txt");
    assert_int_equal(cfg_apply_set(&c, "run.batch=16", &err), PE_OK);
    assert_int_equal(c.run_batch, 16);
    assert_int_equal(cfg_apply_set(&c, "data.limit=123456789012", &err), PE_OK);
    assert_true(c.data_limit == 123456789012L);
    assert_int_equal(cfg_apply_set(&c, "data.mode=images", &err), PE_OK);
    assert_int_equal(cfg_apply_set(&c, "data.mode=", &err), PE_OK); /* empty = auto */
    assert_string_equal(c.data_mode, "");
    assert_int_equal(cfg_apply_set(&c, "model.tokenizer=", &err), PE_OK);

    const char *bad[] = {"model.path", "modelpath=x", ".path=x", "model.=x", "=x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* a malformed argument is a usage error (exit 1), like an unknown option */
        assert_int_equal(cfg_apply_set(&c, bad[i], &err), PE_ERR_USAGE);
        assert_contains(err.msg, "expected the form --set section.key=value");
    }
    assert_int_equal(cfg_apply_set(&c, "model.nope=1", &err), PE_ERR_INPUT);
    assert_contains(err.msg, "unknown key 'nope' in section [model]");
    assert_int_equal(cfg_apply_set(&c, "run.batch=0", &err), PE_ERR_INPUT);
    assert_contains(err.msg, "run.batch = 0 is out of range; it must be >= 1");
    assert_int_equal(cfg_apply_set(&c, "data.stride=-1", &err), PE_ERR_INPUT);
    assert_int_equal(cfg_apply_set(&c, "data.context=99999999999", &err), PE_ERR_INPUT);
    assert_contains(err.msg, "is not an integer");
    assert_int_equal(cfg_apply_set(&c, "run.batch=", &err), PE_ERR_INPUT);
    assert_int_equal(c.run_batch, 16); /* failed sets change nothing */
    assert_int_equal(c.data_stride, 0);
}

static void test_unknown_key_and_section(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    const char *path = write_ini("unknown_key.ini", "[model]\npath = m.bin\n\nfromat = auto\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    char want[4400];
    snprintf(want, sizeof want, "%s:4: unknown key 'fromat' in section [model]; known keys: path, format, "
             "tokenizer, config", path);
    assert_string_equal(err.msg, want);
    assert_string_equal(c.model_path, ""); /* nothing applied from a bad file */

    path = write_ini("unknown_section.ini", "[model]\npath = m.bin\n[modle]\npath = x\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    snprintf(want, sizeof want, "%s:4: unknown section [modle]; known sections: [model], [data], [run], [pathways], [importance], [train]", path);
    assert_string_equal(err.msg, want);

    path = write_ini("no_section.ini", "path = m.bin\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":1: key 'path' is outside any section");

    path = write_ini("syntax.ini", "[model]\npath = m.bin\nthis line has no equals sign\n[data]\nlimt = 1\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":3: syntax error");

    char longline[400];
    memset(longline, 'a', sizeof longline);
    memcpy(longline, "[model]\npath = ", 15);
    strcpy(longline + sizeof longline - 2, "\n");
    path = write_ini("long.ini", longline);
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":2: line is too long");
}

static void test_bad_int(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    const char *path = write_ini("bad_int.ini", "[data]\nlimit = abc\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    char want[4400];
    snprintf(want, sizeof want, "%s:2: data.limit = 'abc' is not an integer", path);
    assert_string_equal(err.msg, want);

    path = write_ini("bad_int2.ini", "[run]\nbatch = 4x\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":2: run.batch = '4x' is not an integer");

    path = write_ini("bad_range.ini", "[data]\ncontext = -5\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":2: data.context = -5 is out of range; it must be >= 0");
}

static void test_bad_enum(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    const char *path = write_ini("bad_enum.ini", "[model]\nformat = gguf\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":2: model.format = 'gguf' is not allowed; choose one of: auto|llama2c|safetensors");
    assert_int_equal(cfg_apply_set(&c, "data.mode=sentences", &err), PE_ERR_INPUT);
    assert_contains(err.msg, "documents|windows|images (or leave it empty for auto)");
    assert_int_equal(cfg_apply_set(&c, "data.format=", &err), PE_ERR_INPUT); /* no empty: default is auto */
    assert_int_equal(cfg_apply_set(&c, "model.format=llama2", &err), PE_ERR_INPUT); /* prefix is no match */
    /* too long for the field */
    assert_int_equal(cfg_apply_set(&c, "model.format=safetensors_safetensors_safetensors", &err), PE_ERR_INPUT);
    assert_string_equal(c.model_format, "auto");
}

static void test_missing_file(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    char path[4200];
    snprintf(path, sizeof path, "%s/does-not-exist.ini", tu_tmp_dir("config"));
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "check the path");
    /* a folder is not a config file */
    assert_int_equal(cfg_load_ini(&c, tu_tmp_dir("config"), &err), PE_ERR_INPUT);
    assert_contains(err.msg, "is a directory, not a config file");
}

/* write len bytes to <tmp>/config/<name> (may hold NUL bytes); returns the path (static buffer) */
static const char *write_bytes(const char *name, const char *data, size_t len) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tu_tmp_dir("config"), name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* a key given twice was "last wins" silently (fuzzing: ini_dup.ini), also across a repeated
 * [section] header: refused, naming the key and both lines; nothing is applied */
static void test_duplicate_key(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    const char *path = write_ini("dup.ini", "[model]\npath = /a.bin\npath = /b.bin\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    char want[4400];
    snprintf(want, sizeof want, "%s:3: model.path is set twice (first on line 2, again here); keep one of the two "
             "lines (a repeated [model] header does not start a new scope)", path);
    assert_string_equal(err.msg, want);
    assert_string_equal(c.model_path, "");

    path = write_ini("dup_section.ini", "[data]\nlimit=3\n[run]\nbatch = 4\n[data]\nlimit=4\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":6: data.limit is set twice (first on line 2, again here)");
    assert_int_equal(c.data_limit, 0);
    assert_int_equal(c.run_batch, 8);

    /* the same key name in two sections, and a repeated header with new keys, are fine */
    path = write_ini("nodup.ini", "[model]\npath = /m.bin\n[data]\npath = /d.txt\n[model]\nformat = llama2c\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_OK);
    assert_string_equal(c.model_path, "/m.bin");
    assert_string_equal(c.data_path, "/d.txt");
    assert_string_equal(c.model_format, "llama2c");
    /* --set after the file still overrides a key the file set once */
    assert_int_equal(cfg_apply_set(&c, "model.path=/o.bin", &err), PE_OK);
    assert_string_equal(c.model_path, "/o.bin");
}

/* a NUL byte inside a line: fgets cut the value there and the rest was ignored (fuzzing:
 * ini_nul.ini, "path = x.bin\0garbage" read as x.bin); refused, naming line and column */
static void test_nul_byte(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    static const char text[] = "[model]\npath = /m.bin\0garbage\n[data]\npath = /d.txt\n";
    const char *path = write_bytes("nul.ini", text, sizeof text - 1);
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    char want[4400];
    snprintf(want, sizeof want, "%s:2: NUL byte at column 14: a config file is plain text; the file is corrupt or "
             "not an INI file (re-save it as text)", path);
    assert_string_equal(err.msg, want);
    assert_string_equal(c.model_path, "");
    assert_string_equal(c.data_path, "");
    static const char text2[] = "[model]\n\0\n"; /* a line that is only a NUL */
    path = write_bytes("nul2.ini", text2, sizeof text2 - 1);
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":2: NUL byte at column 1");
}

/* float keys: finite and in range after the conversion to double; inf only for pathways.lambda */
static void test_float_values(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    struct { const char *set, *want; } bad[] = {
        {"pathways.ratio=1e400", "pathways.ratio = '1e400' overflows a double (it would be inf)"},
        {"train.clip=-1e999", "train.clip = '-1e999' overflows a double (it would be -inf)"},
        {"pathways.ratio=inf", "pathways.ratio = 'inf' is infinite; give a finite number between 1 and 1e+09"},
        {"train.checkpoint_minutes=Infinity", "'Infinity' is infinite"},
        {"pathways.sigma=-inf", "pathways.sigma = '-inf' is infinite"},
        {"pathways.lambda=-inf", "pathways.lambda = '-inf' is infinite"},
        {"train.lr=nan", "train.lr = 'nan' is NaN (not a number); give a number between 0 and 10"},
        {"pathways.keep=-nan", "is NaN"},
        {"train.eps=1e-400", "train.eps = '1e-400' underflows a double"},
        {"train.eps=4e-320", "underflows a double"}, /* subnormal */
        {"train.lr=11", "train.lr = 11 is out of range; it must be between 0 and 10"},
        {"train.lr=0x", "train.lr = '0x' is not a number"},
        {"train.lr=", "train.lr = '' is not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cfg_apply_set(&c, bad[i].set, &err) != PE_ERR_INPUT) fail_msg("--set %s was accepted", bad[i].set);
        assert_contains(err.msg, bad[i].want);
    }
    assert_true(c.pw_ratio == 4.0 && c.tr_lr == 1e-3 && c.tr_eps == 1e-8); /* nothing applied */
    assert_int_equal(cfg_apply_set(&c, "pathways.lambda=inf", &err), PE_OK); /* uniform: the one inf allowed */
    assert_true(isinf(c.pw_lambda) && c.pw_lambda > 0);
    assert_int_equal(cfg_apply_set(&c, "pathways.lambda=2.5", &err), PE_OK);
    assert_true(c.pw_lambda == 2.5);
    assert_int_equal(cfg_apply_set(&c, "train.eps=0", &err), PE_OK);
    assert_int_equal(cfg_apply_set(&c, "pathways.ratio=1e9", &err), PE_OK);
    /* the same from an INI file, with its line */
    const char *path = write_ini("float.ini", "[train]\nlr = 1e-3\nbeta1 = 1e999\n");
    cfg_init_defaults(&c);
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":3: train.beta1 = '1e999' overflows a double");
    path = write_ini("float_nan.ini", "[pathways]\nratio = NaN\n");
    assert_int_equal(cfg_load_ini(&c, path, &err), PE_ERR_INPUT);
    assert_contains(err.msg, ":2: pathways.ratio = 'NaN' is NaN");
    /* a NaN set directly in the struct is caught by cfg_validate */
    cfg_init_defaults(&c);
    assert_int_equal(cfg_apply_set(&c, "model.path=m.bin", &err), PE_OK);
    assert_int_equal(cfg_apply_set(&c, "data.path=d.txt", &err), PE_OK);
    c.pw_sigma = NAN;
    assert_int_equal(cfg_validate(&c, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "pathways.sigma");
}

/* run identities (sweep folders, checkpoints, the finished-run check): a key added later
 * (train.dropout) is left out at its default, so runs made before it keep their identity, and is
 * in once set; cfg_identity_trim does the same to a config read back */
static void test_json_identity(void **state) {
    (void)state;
    pe_config c;
    pe_err    err = {0};
    cfg_init_defaults(&c);
    cJSON *full = cfg_to_json(&c), *id = cfg_to_json_identity(&c);
    cJSON *tr_full = cJSON_GetObjectItemCaseSensitive(full, "train"), *tr_id = cJSON_GetObjectItemCaseSensitive(id, "train");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(tr_full, "dropout"));
    assert_null(cJSON_GetObjectItemCaseSensitive(tr_id, "dropout"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(tr_id, "augment_flip")); /* in identities since it came */
    cfg_identity_trim(full);
    assert_true(cJSON_Compare(full, id, 1));
    cJSON_Delete(full), cJSON_Delete(id);
    assert_int_equal(cfg_apply_set(&c, "train.dropout=0.1", &err), PE_OK);
    full = cfg_to_json(&c), id = cfg_to_json_identity(&c);
    cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(id, "train"), "dropout");
    assert_non_null(d);
    assert_true(d->valuedouble == 0.1);
    cfg_identity_trim(full);
    assert_true(cJSON_Compare(full, id, 1));
    cJSON_Delete(full), cJSON_Delete(id);
}

static void test_json_echo(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    assert_int_equal(cfg_apply_set(&c, "model.path=m.bin", &err), PE_OK);
    assert_int_equal(cfg_apply_set(&c, "data.path=d \"q\".txt", &err), PE_OK);
    assert_int_equal(cfg_apply_set(&c, "data.limit=5000000000", &err), PE_OK);
    cJSON *j = cfg_to_json(&c);
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    assert_non_null(s);
    assert_string_equal(s,
        "{\"model\":{\"path\":\"m.bin\",\"format\":\"auto\",\"tokenizer\":\"\",\"config\":\"\"},"
        "\"data\":{\"path\":\"d \\\"q\\\".txt\",\"format\":\"auto\",\"mode\":\"\",\"dtype\":\"uint16\",\"eos\":-1,\"labels\":\"\","
        "\"limit\":5000000000,\"context\":0,\"stride\":0,\"span\":\"0:1\"},"
        "\"run\":{\"out\":\"runs/default\",\"batch\":8,\"shard\":16,\"member_block\":0,\"per_example\":0},"
        "\"pathways\":{\"scheme\":\"unbiased\",\"ratio\":4,\"sigma\":4,\"lambda\":\"inf\",\"keep\":0,"
        "\"members\":0,\"seed\":1234,\"granularity\":\"head\",\"plan\":\"\",\"combine\":\"prob\"},"
        "\"importance\":{\"statistics\":1,\"ablation\":0,\"units\":0},"
        "\"train\":{\"steps\":1000,\"batch\":64,\"grad_chunks\":4,\"context\":0,\"lr\":0.001,\"min_lr\":0.0001,"
        "\"warmup\":100,\"weight_decay\":0.05,\"beta1\":0.9,\"beta2\":0.99,\"eps\":1e-08,\"clip\":1,"
        "\"finetune_dense_steps\":0,\"seed\":1,\"checkpoint_minutes\":5,\"checkpoint_steps\":0,\"log_every\":50,"
        "\"val_span\":\"\",\"val_every\":0,\"augment_crop\":0,\"augment_flip\":0,\"dropout\":0}}");
    /* round trip: parse it back and compare values */
    cJSON *back = cJSON_Parse(s);
    assert_non_null(back);
    cJSON *data = cJSON_GetObjectItemCaseSensitive(back, "data");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "path")), c.data_path);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(data, "limit")) == 5000000000.0);
    cJSON *run = cJSON_GetObjectItemCaseSensitive(back, "run");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(run, "batch")), 8);
    assert_true(cJSON_Compare(j, back, 1));
    cJSON_Delete(back);
    cJSON_free(s);
    cJSON_Delete(j);
}

static void test_validate(void **state) {
    pe_config c;
    pe_err err = {0};
    cfg_init_defaults(&c);
    assert_int_equal(cfg_validate(&c, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "model.path is not set");
    assert_contains(err.msg, "--set model.path=");
    assert_int_equal(cfg_apply_set(&c, "model.path=m.bin", &err), PE_OK);
    assert_int_equal(cfg_validate(&c, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "data.path is not set");
    assert_int_equal(cfg_apply_set(&c, "data.path=d.txt", &err), PE_OK);
    assert_int_equal(cfg_validate(&c, &err), PE_OK);
    /* values set directly in the struct are checked too */
    c.run_batch = 0;
    assert_int_equal(cfg_validate(&c, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "run.batch = 0 is out of range");
    c.run_batch = 1;
    strcpy(c.data_mode, "bogus");
    assert_int_equal(cfg_validate(&c, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "data.mode = 'bogus'");
}

static void test_print_keys(void **state) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cfg_print_keys(f, NULL);
    fclose(f);
    assert_contains(buf, "model.path ");
    assert_contains(buf, "(required)");
    assert_contains(buf, "[auto|llama2c|safetensors]");
    assert_contains(buf, "run.batch ");
    assert_contains(buf, "runs/default");
    /* aligned: every help column starts at the same offset as in the header */
    const char *hdr_help = strstr(buf, "meaning");
    assert_non_null(hdr_help);
    size_t col = (size_t)(hdr_help - buf);
    const char *batch = strstr(buf, "\nrun.batch");
    assert_non_null(batch);
    assert_int_equal(strncmp(batch + 1 + col, "sequences", 9), 0);
    free(buf);
    /* a filter: whole sections and single keys, nothing else */
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_non_null(f);
    cfg_print_keys(f, "model run.out pathways.ratio");
    fclose(f);
    assert_contains(buf, "model.path ");
    assert_contains(buf, "model.config ");
    assert_contains(buf, "run.out ");
    assert_contains(buf, "pathways.ratio ");
    assert_null(strstr(buf, "run.batch"));
    assert_null(strstr(buf, "pathways.members"));
    assert_null(strstr(buf, "train."));
    assert_null(strstr(buf, "data."));
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse_good_ini),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_unknown_key_and_section),
        cmocka_unit_test(test_bad_int),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_float_values),
        cmocka_unit_test(test_json_echo),
        cmocka_unit_test(test_json_identity),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_print_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
