#include "daemon/router.h"

#include <gtest/gtest.h>

namespace appliance {
namespace {

TEST(RouterTest, HostAndVmCollection) {
  EXPECT_EQ(MatchRoute("GET", "/v1/host").id, RouteId::kHost);
  EXPECT_EQ(MatchRoute("GET", "/v1/vms").id, RouteId::kListVms);
  EXPECT_EQ(MatchRoute("POST", "/v1/vms").id, RouteId::kCreateVm);
  EXPECT_EQ(MatchRoute("GET", "/v1/vms/").id, RouteId::kListVms);  // trailing slash
}

TEST(RouterTest, SingleVm) {
  Route r = MatchRoute("GET", "/v1/vms/web1");
  EXPECT_EQ(r.id, RouteId::kGetVm);
  EXPECT_EQ(r.name, "web1");
  r = MatchRoute("DELETE", "/v1/vms/web1");
  EXPECT_EQ(r.id, RouteId::kDeleteVm);
  EXPECT_EQ(r.name, "web1");
  r = MatchRoute("GET", "/v1/vms/web1/console");
  EXPECT_EQ(r.id, RouteId::kConsole);
  EXPECT_EQ(r.name, "web1");
}

TEST(RouterTest, EveryAction) {
  for (auto [text, action] :
       {std::pair{"start", VmAction::kStart}, std::pair{"stop", VmAction::kStop},
        std::pair{"pause", VmAction::kPause}, std::pair{"resume", VmAction::kResume},
        std::pair{"save", VmAction::kSave}, std::pair{"restore", VmAction::kRestore}}) {
    Route r = MatchRoute("POST", std::string("/v1/vms/a.b-c_d/") + text);
    EXPECT_EQ(r.id, RouteId::kVmAction) << text;
    EXPECT_EQ(r.action, action) << text;
    EXPECT_EQ(r.name, "a.b-c_d");
  }
}

TEST(RouterTest, UnknownPathsAreNotFound) {
  for (const char* path : {"", "v1/host", "/", "/v1", "/v2/host", "/v1/hosts", "/v1/host/x",
                           "/v1/vms/a/b/c", "/v1/vms/a/reboot", "/v1/vms/a/delete"}) {
    EXPECT_EQ(MatchRoute("GET", path).id, RouteId::kNotFound) << path;
    EXPECT_EQ(MatchRoute("POST", path).id, RouteId::kNotFound) << path;
  }
}

TEST(RouterTest, WrongMethodNamesTheAllowedOnes) {
  Route r = MatchRoute("POST", "/v1/host");
  EXPECT_EQ(r.id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "GET");
  r = MatchRoute("DELETE", "/v1/vms");
  EXPECT_EQ(r.id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "GET, POST");
  r = MatchRoute("POST", "/v1/vms/web1");
  EXPECT_EQ(r.id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "GET, DELETE");
  r = MatchRoute("GET", "/v1/vms/web1/start");
  EXPECT_EQ(r.id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "POST");
  r = MatchRoute("POST", "/v1/vms/web1/console");
  EXPECT_EQ(r.id, RouteId::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "GET");
}

}  // namespace
}  // namespace appliance
